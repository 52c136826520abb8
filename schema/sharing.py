"""Share links (staff), the public tracking API (token holders) and ratings."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.permission import BasePermission

from db import models
from resolvers import sharing as share_resolvers
from resolvers.ids import encode_id
from schema.enums import ServiceOrderStatus
from schema.permissions import IsStaff
from schema.types import (
    STATUS_INFOS,
    Account,
    Connection,
    CtxInfo,
    Money,
    ServiceOrder,
    ServiceOrderStatusInfo,
    UserError,
)
from services import sharing
from services.events import EventRecord
from services.events import EventType as _EventType
from services.sharing import Decision
from services.sharing import Permission as _Permission

strawberry.enum(_Permission, name="SharePermission", description="What a share link allows.")
STAFF: list[type[BasePermission]] = [IsStaff]


@strawberry.type(description="A ready-to-send message with the link.")
class ShareMessage:
    text: str
    whatsapp_url: str | None = strawberry.field(
        description="wa.me link; null without a client phone."
    )


@strawberry.type(description="A customer's link to one order (staff view).")
class ShareLink:
    id: strawberry.ID
    url: str
    permissions: list[_Permission]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    is_active: bool
    view_count: int = strawberry.field(
        description="Page opens by a person (not API calls or link previews)."
    )
    last_viewed_at: datetime | None
    last_access_at: datetime | None
    _link: strawberry.Private[models.ShareLink]

    @classmethod
    def of(cls, info: CtxInfo, link: models.ShareLink) -> ShareLink:
        return cls(
            id=strawberry.ID(encode_id("ShareLink", link.id)),
            url=share_resolvers.link_url(info.context, link),
            permissions=[
                p for p in _Permission if p in sharing.decode_permissions(link.permissions)
            ],
            created_at=link.created_at,
            expires_at=link.expires_at,
            revoked_at=link.revoked_at,
            is_active=sharing.is_active(link),
            view_count=link.view_count,
            last_viewed_at=link.last_viewed_at,
            last_access_at=link.last_access_at,
            _link=link,
        )

    @strawberry.field(description="Text to paste into WhatsApp, SMS or email.")
    async def share_message(self, info: CtxInfo) -> ShareMessage:
        message = await share_resolvers.share_message(info.context, self._link)
        return ShareMessage(text=message.text, whatsapp_url=message.whatsapp_url)


async def order_share_links(info: CtxInfo, order: ServiceOrder) -> list[ShareLink]:
    rows = await share_resolvers.order_links(info.context, order._m.id)
    return [ShareLink.of(info, r) for r in rows]


# --- public tracking ----------------------------------------------------------------------


@strawberry.type
class TrackedDevice:
    brand: str | None
    model: str
    imei: str | None = strawberry.field(description="Masked: only the last 4 digits.")
    serial_number: str | None = strawberry.field(description="Masked: only the last 4 characters.")


@strawberry.type
class TrackedPart:
    name: str
    quantity: int
    unit_cost: Money
    line_total: Money


@strawberry.type(
    description="A status the order went through, with the note meant for the customer."
)
class TimelineEntry:
    status: ServiceOrderStatus
    label: str
    color: str
    at: datetime
    note: str | None


@strawberry.type
class TrackingComment:
    id: strawberry.ID
    from_customer: bool
    author_name: str
    body: str
    at: datetime


@strawberry.type
class TrackedRating:
    stars: int
    comment: str | None
    at: datetime


@strawberry.type(description="The shop's contact details, as shown to customers.")
class ShopContact:
    name: str
    phone: str | None
    email: str | None
    address: str | None
    website: str | None


@strawberry.type(description="What the link allows now.")
class TrackingLink:
    permissions: list[_Permission]
    expires_at: datetime
    can_approve: bool = strawberry.field(description="APPROVE permission and an estimate waiting.")
    can_comment: bool
    can_rate: bool = strawberry.field(description="Completed and not rated yet.")


@strawberry.type(description="What a share-link holder sees of one order.")
class Tracking:
    number: str
    status: ServiceOrderStatus
    status_info: ServiceOrderStatusInfo
    device: TrackedDevice
    problem_reported: str
    diagnosis: str | None
    estimate: Money | None = strawberry.field(description="While the estimate awaits a decision.")
    approved_amount: Money | None
    parts: list[TrackedPart] | None = strawberry.field(description="Once approved (or in repair).")
    labour_cost: Money | None
    parts_total: Money | None
    total: Money | None
    final_cost: Money | None = strawberry.field(description="Once completed.")
    warranty_expires_at: datetime | None
    timeline: list[TimelineEntry]
    comments: list[TrackingComment]
    rating: TrackedRating | None
    shop: ShopContact
    link: TrackingLink
    last_sequence: int = strawberry.field(
        description="Pass as `after` to trackingEvents to follow on from this view."
    )

    @classmethod
    def of(cls, view: sharing.TrackingView) -> Tracking:
        access = view.access
        order, account = access.order, access.account
        cur = account.currency
        status = ServiceOrderStatus(order.status)
        return cls(
            number=order.number,
            status=status,
            status_info=STATUS_INFOS[status],
            device=TrackedDevice(
                brand=order.device_brand,
                model=order.device_model,
                imei=view.masked_imei,
                serial_number=view.masked_serial,
            ),
            problem_reported=order.problem_reported,
            diagnosis=order.diagnosis,
            estimate=Money.maybe(view.estimate, cur),
            approved_amount=Money.maybe(view.approved_amount, cur),
            parts=None
            if view.parts is None
            else [
                TrackedPart(
                    name=p.name,
                    quantity=p.quantity,
                    unit_cost=Money.of(p.unit_cost, cur),
                    line_total=Money.of(p.line_total, cur),
                )
                for p in view.parts
            ],
            labour_cost=Money.maybe(view.labour_cost, cur),
            parts_total=Money.maybe(view.parts_total, cur),
            total=Money.maybe(view.total, cur),
            final_cost=Money.maybe(view.final_cost, cur),
            warranty_expires_at=view.warranty_expires_at,
            timeline=[
                TimelineEntry(
                    status=ServiceOrderStatus(t.status.value),
                    label=STATUS_INFOS[t.status].label,
                    color=STATUS_INFOS[t.status].color,
                    at=t.at,
                    note=t.note,
                )
                for t in view.timeline
            ],
            comments=[
                TrackingComment(
                    id=strawberry.ID(encode_id("Comment", c.id)),
                    from_customer=c.author_kind == "CUSTOMER",
                    author_name=c.author_name,
                    body=c.body,
                    at=c.at,
                )
                for c in view.comments
            ],
            rating=TrackedRating(
                stars=view.rating.stars, comment=view.rating.comment, at=view.rating.created_at
            )
            if view.rating
            else None,
            shop=ShopContact(
                name=account.name,
                phone=account.phone,
                email=account.email,
                address=account.address,
                website=account.website,
            ),
            link=TrackingLink(
                permissions=[p for p in _Permission if p in access.permissions],
                expires_at=access.link.expires_at,
                can_approve=view.can_approve,
                can_comment=view.can_comment,
                can_rate=view.can_rate,
            ),
            last_sequence=order.last_event_seq,
        )


@strawberry.type(
    description="A change on a tracked order. Fetch `tracking` again for the full view."
)
class TrackingEvent:
    sequence: int
    type: _EventType
    at: datetime
    status: ServiceOrderStatus
    status_info: ServiceOrderStatusInfo

    @classmethod
    def of(cls, record: EventRecord) -> TrackingEvent:
        cached: TrackingEvent | None = record.__dict__.get("_tracking")
        if cached is None:
            status = ServiceOrderStatus(record.payload["status"])
            cached = cls(
                sequence=record.order_seq,
                type=_EventType(record.type),
                at=record.created_at,
                status=status,
                status_info=STATUS_INFOS[status],
            )
            object.__setattr__(record, "_tracking", cached)
        return cached


# --- ratings ------------------------------------------------------------------------------


@strawberry.type
class StarCount:
    stars: int
    count: int


@strawberry.type
class RatingNode:
    id: strawberry.ID
    stars: int
    comment: str | None
    created_at: datetime
    _order_id: strawberry.Private[int]

    @classmethod
    def of(cls, rating: models.Rating) -> RatingNode:
        return cls(
            id=strawberry.ID(encode_id("Rating", rating.id)),
            stars=rating.stars,
            comment=rating.comment,
            created_at=rating.created_at,
            _order_id=rating.order_id,
        )

    @strawberry.field
    def service_order_id(self) -> strawberry.ID:
        return strawberry.ID(encode_id("ServiceOrder", self._order_id))


@strawberry.type(description="Customer ratings of the shop.")
class RatingsSummary:
    average: float | None
    total: int
    per_star: list[StarCount]

    @strawberry.field(description="Newest first.")
    async def ratings(
        self,
        info: CtxInfo,
        first: int | None = 20,
        after: str | None = None,
        with_comment_only: bool = False,
    ) -> Connection[RatingNode]:
        page = await share_resolvers.list_ratings(info.context, first, after, with_comment_only)
        return Connection.build(info.context, page, RatingNode.of)


# --- inputs and payloads ------------------------------------------------------------------


@strawberry.input
class ShareLinkCreateInput:
    order_id: strawberry.ID
    permissions: list[_Permission] | None = strawberry.field(
        default=None, description="Default: the shop's defaults (VIEW, APPROVE, COMMENT)."
    )
    validity_days: int | None = strawberry.field(default=None, description="7 (default), 14 or 30.")


@strawberry.input
class ShareLinkRevokeInput:
    id: strawberry.ID


@strawberry.input
class AccountShareDefaultsUpdateInput:
    share_permissions: list[_Permission] | None = None
    share_validity_days: int | None = None


@strawberry.input
class ServiceOrderCommentInput:
    order_id: strawberry.ID
    body: str


@strawberry.input
class TrackingTokenInput:
    token: str


@strawberry.input
class TrackingApproveInput:
    token: str
    expected_estimate: Decimal | None = strawberry.field(
        default=None,
        description="The estimate the customer was shown; if it changed since, the approval "
        "is refused with ESTIMATE_CHANGED.",
    )


@strawberry.input
class TrackingRejectInput:
    token: str
    reason: str | None = None


@strawberry.input
class TrackingCommentAddInput:
    token: str
    body: str = strawberry.field(description="1 to 2000 characters.")


@strawberry.input
class TrackingRateInput:
    token: str
    stars: int = strawberry.field(description="1 to 5.")
    comment: str | None = strawberry.field(default=None, description="Up to 500 characters.")


@strawberry.type
class ShareLinkCreatePayload:
    share_link: ShareLink | None
    reused: bool = strawberry.field(
        description="true when a valid link with these permissions and validity existed"
    )
    user_errors: list[UserError]


@strawberry.type
class ShareLinkRevokePayload:
    share_link: ShareLink | None
    user_errors: list[UserError]


@strawberry.type
class AccountShareDefaultsUpdatePayload:
    account: Account | None
    user_errors: list[UserError]


@strawberry.type
class ServiceOrderCommentPayload:
    comment: TrackingComment | None
    user_errors: list[UserError]


@strawberry.type
class TrackingPayload:
    tracking: Tracking | None
    user_errors: list[UserError]


@strawberry.type
class TrackingViewRecordPayload:
    recorded: bool
    user_errors: list[UserError]


async def _tracking_after(info: CtxInfo, token: str, errors: Sequence[object]) -> Tracking | None:
    if errors:
        return None
    return Tracking.of(await share_resolvers.tracking(info.context, token))


@strawberry.type
class SharingQuery:
    @strawberry.field(description="Public: what the holder of a share-link token sees.")
    async def tracking(self, info: CtxInfo, token: str) -> Tracking:
        return Tracking.of(await share_resolvers.tracking(info.context, token))

    @strawberry.field(permission_classes=STAFF)
    async def ratings_summary(self, info: CtxInfo) -> RatingsSummary:
        summary = await share_resolvers.ratings_summary(info.context)
        return RatingsSummary(
            average=summary.average,
            total=summary.total,
            per_star=[StarCount(stars=s, count=c) for s, c in sorted(summary.per_star.items())],
        )


@strawberry.type
class SharingMutation:
    @strawberry.mutation(
        permission_classes=STAFF,
        description="Share an order: reuses a valid link with the same permissions and "
        "validity, else makes one.",
    )
    async def share_link_create(
        self, info: CtxInfo, input: ShareLinkCreateInput
    ) -> ShareLinkCreatePayload:
        result, errors = await share_resolvers.create_link(info.context, input)
        return ShareLinkCreatePayload(
            share_link=ShareLink.of(info, result.link) if result else None,
            reused=bool(result and result.reused),
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(
        permission_classes=STAFF,
        description="Withdraw a link: every request and open stream on it fails at once.",
    )
    async def share_link_revoke(
        self, info: CtxInfo, input: ShareLinkRevokeInput
    ) -> ShareLinkRevokePayload:
        link, errors = await share_resolvers.revoke_link(info.context, input.id)
        return ShareLinkRevokePayload(
            share_link=ShareLink.of(info, link) if link else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(
        permission_classes=STAFF, description="Owners and managers set the shop's link defaults."
    )
    async def account_share_defaults_update(
        self, info: CtxInfo, input: AccountShareDefaultsUpdateInput
    ) -> AccountShareDefaultsUpdatePayload:
        account, errors = await share_resolvers.update_share_defaults(info.context, input)
        return AccountShareDefaultsUpdatePayload(
            account=Account.from_model(account) if account else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(
        permission_classes=STAFF,
        description="A message to the customer (shown on the tracking page).",
    )
    async def service_order_comment(
        self, info: CtxInfo, input: ServiceOrderCommentInput
    ) -> ServiceOrderCommentPayload:
        comment, errors = await share_resolvers.staff_comment(info.context, input)
        staff_name = (info.context.actor.name if info.context.actor else "").split(" ")[
            0
        ] or "Staff"
        return ServiceOrderCommentPayload(
            comment=TrackingComment(
                id=strawberry.ID(encode_id("Comment", comment.id)),
                from_customer=False,
                author_name=staff_name,
                body=comment.body,
                at=comment.created_at,
            )
            if comment
            else None,
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(description="Public: the page reports that a person opened it.")
    async def tracking_view_record(
        self, info: CtxInfo, input: TrackingTokenInput
    ) -> TrackingViewRecordPayload:
        link, errors = await share_resolvers.record_view(info.context, input.token)
        return TrackingViewRecordPayload(
            recorded=link is not None, user_errors=UserError.list(errors)
        )

    @strawberry.mutation(description="Public: approve the estimate (APPROVE permission).")
    async def tracking_approve(self, info: CtxInfo, input: TrackingApproveInput) -> TrackingPayload:
        _, errors = await share_resolvers.decide(
            info.context, input.token, Decision.APPROVE, None, input.expected_estimate
        )
        return TrackingPayload(
            tracking=await _tracking_after(info, input.token, errors),
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(description="Public: reject the estimate, with an optional reason.")
    async def tracking_reject(self, info: CtxInfo, input: TrackingRejectInput) -> TrackingPayload:
        _, errors = await share_resolvers.decide(
            info.context, input.token, Decision.REJECT, input.reason
        )
        return TrackingPayload(
            tracking=await _tracking_after(info, input.token, errors),
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(
        description="Public: a question or message to the shop (COMMENT permission)."
    )
    async def tracking_comment_add(
        self, info: CtxInfo, input: TrackingCommentAddInput
    ) -> TrackingPayload:
        _, errors = await share_resolvers.customer_comment(info.context, input.token, input.body)
        return TrackingPayload(
            tracking=await _tracking_after(info, input.token, errors),
            user_errors=UserError.list(errors),
        )

    @strawberry.mutation(description="Public: rate the service once the order is completed (once).")
    async def tracking_rate(self, info: CtxInfo, input: TrackingRateInput) -> TrackingPayload:
        _, errors = await share_resolvers.rate(
            info.context, input.token, input.stars, input.comment
        )
        return TrackingPayload(
            tracking=await _tracking_after(info, input.token, errors),
            user_errors=UserError.list(errors),
        )


@strawberry.type
class SharingSubscription:
    @strawberry.subscription(
        description="Public: the live, resumable stream of a tracked order (no staff-only events). "
        "Pass the last sequence seen as `after`."
    )
    async def tracking_events(
        self, info: CtxInfo, token: str, after: int | None = None
    ) -> AsyncGenerator[TrackingEvent, None]:
        async for record in share_resolvers.tracking_events(info.context, token, after):
            yield TrackingEvent.of(record)
