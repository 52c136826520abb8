from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission

from resolvers import auth as auth_resolvers
from resolvers import events as event_resolvers
from resolvers import orders as order_resolvers
from schema import inputs as i
from schema import payloads as p
from schema.permissions import IsStaff
from schema.types import CtxInfo, InternalNote, PartLine, ServiceOrder, StaffUser, UserError

STAFF: list[type[BasePermission]] = [IsStaff]


def _order(info: CtxInfo, row: object) -> ServiceOrder | None:
    return None if row is None else ServiceOrder.builder(info.context)(row)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Exchange email and password for a bearer token.")
    async def login(self, info: CtxInfo, input: i.LoginInput) -> p.LoginPayload:
        issued, errors = await auth_resolvers.login(info.context, input.email, input.password)
        if issued is None:
            return p.LoginPayload(
                token=None, expires_at=None, staff_user=None, user_errors=UserError.list(errors)
            )
        return p.LoginPayload(
            token=issued.token,
            expires_at=issued.expires_at,
            staff_user=StaffUser.from_model(issued.user),
            user_errors=[],
        )

    @strawberry.mutation(permission_classes=STAFF, description="Revoke the token of this request.")
    async def logout(self, info: CtxInfo) -> p.LogoutPayload:
        return p.LogoutPayload(revoked=await auth_resolvers.logout(info.context), user_errors=[])

    @strawberry.mutation(permission_classes=STAFF, description="Intake: a new order in PENDING.")
    async def service_order_create(
        self, info: CtxInfo, input: i.ServiceOrderCreateInput
    ) -> p.ServiceOrderCreatePayload:
        result, errors = await order_resolvers.create_order(info.context, input)
        return p.ServiceOrderCreatePayload(
            service_order=_order(info, result.order if result else None),
            created=bool(result and result.created),
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(permission_classes=STAFF, description="Change client and device details.")
    async def service_order_update(
        self, info: CtxInfo, input: i.ServiceOrderUpdateInput
    ) -> p.ServiceOrderUpdatePayload:
        row, errors = await order_resolvers.update_order(info.context, input)
        return p.ServiceOrderUpdatePayload(
            service_order=_order(info, row), user_errors=UserError.list(errors)
        )

    @strawberry.mutation(
        permission_classes=STAFF, description="Diagnosis, estimate, labour, final cost, warranty."
    )
    async def service_order_set_diagnosis(
        self, info: CtxInfo, input: i.ServiceOrderSetDiagnosisInput
    ) -> p.ServiceOrderSetDiagnosisPayload:
        row, errors = await order_resolvers.set_diagnosis(info.context, input)
        return p.ServiceOrderSetDiagnosisPayload(
            service_order=_order(info, row), user_errors=UserError.list(errors)
        )

    @strawberry.mutation(
        permission_classes=STAFF, description="Move an order along the status machine."
    )
    async def service_order_transition(
        self, info: CtxInfo, input: i.ServiceOrderTransitionInput
    ) -> p.ServiceOrderTransitionPayload:
        row, errors = await order_resolvers.transition_order(info.context, input)
        return p.ServiceOrderTransitionPayload(
            service_order=_order(info, row), user_errors=UserError.list(errors)
        )

    @strawberry.mutation(
        permission_classes=STAFF, description="Assign (or with null, unassign) a technician."
    )
    async def service_order_assign(
        self, info: CtxInfo, input: i.ServiceOrderAssignInput
    ) -> p.ServiceOrderAssignPayload:
        row, errors = await order_resolvers.assign_order(info.context, input)
        return p.ServiceOrderAssignPayload(
            service_order=_order(info, row), user_errors=UserError.list(errors)
        )

    @strawberry.mutation(permission_classes=STAFF)
    async def part_line_add(self, info: CtxInfo, input: i.PartLineAddInput) -> p.PartLineAddPayload:
        result, errors = await order_resolvers.add_part(info.context, input)
        order, part = result if result else (None, None)
        currency = info.context.actor.currency  # type: ignore[union-attr]
        return p.PartLineAddPayload(
            service_order=_order(info, order),
            part_line=PartLine.from_model(part, currency) if part else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(permission_classes=STAFF)
    async def part_line_update(
        self, info: CtxInfo, input: i.PartLineUpdateInput
    ) -> p.PartLineUpdatePayload:
        result, errors = await order_resolvers.update_part(info.context, input)
        order, part = result if result else (None, None)
        currency = info.context.actor.currency  # type: ignore[union-attr]
        return p.PartLineUpdatePayload(
            service_order=_order(info, order),
            part_line=PartLine.from_model(part, currency) if part else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(permission_classes=STAFF)
    async def part_line_remove(
        self, info: CtxInfo, input: i.PartLineRemoveInput
    ) -> p.PartLineRemovePayload:
        order, errors = await order_resolvers.remove_part(info.context, input)
        return p.PartLineRemovePayload(
            service_order=_order(info, order),
            deleted_part_line_id=None if errors else input.id,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(
        permission_classes=STAFF, description="A staff-only note; never shown to customers."
    )
    async def internal_note_add(
        self, info: CtxInfo, input: i.InternalNoteAddInput
    ) -> p.InternalNoteAddPayload:
        result, errors = await order_resolvers.add_note(info.context, input)
        order, note = result if result else (None, None)
        return p.InternalNoteAddPayload(
            service_order=_order(info, order),
            internal_note=InternalNote.from_model(note) if note else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(permission_classes=STAFF)
    async def notifications_mark_read(
        self, info: CtxInfo, input: i.NotificationsMarkReadInput
    ) -> p.NotificationsMarkReadPayload:
        count, errors = await event_resolvers.mark_read(info.context, input.ids, input.all)
        return p.NotificationsMarkReadPayload(
            unread_count=count, user_errors=UserError.list(errors)
        )

    @strawberry.mutation(permission_classes=STAFF, description="Owners and managers add staff.")
    async def staff_user_create(
        self, info: CtxInfo, input: i.StaffUserCreateInput
    ) -> p.StaffUserCreatePayload:
        row, errors = await auth_resolvers.create_staff_user(info.context, input)
        return p.StaffUserCreatePayload(
            staff_user=StaffUser.maybe(row), user_errors=UserError.list(errors)
        )

    @strawberry.mutation(
        permission_classes=STAFF,
        description="Deactivate a staff member; their tokens stop working at once.",
    )
    async def staff_user_deactivate(
        self, info: CtxInfo, input: i.StaffUserDeactivateInput
    ) -> p.StaffUserDeactivatePayload:
        row, errors = await auth_resolvers.deactivate_staff_user(info.context, input)
        return p.StaffUserDeactivatePayload(
            staff_user=StaffUser.maybe(row), user_errors=UserError.list(errors)
        )
