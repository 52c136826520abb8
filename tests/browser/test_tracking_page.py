"""The customer's tracking page in a real browser, against the real server process.

Staff act over HTTP GraphQL; the customer's page (/t/<token>) runs in headless Chromium at
phone width. The page must follow every change live (no reload), offer exactly the actions
the order allows, catch up after a network loss, explain broken links, and stay usable
with a keyboard and a screen reader (named buttons, labelled fields, announced changes).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

from playwright.async_api import Page, WebSocket, expect
from sqlalchemy import update

from db.base import utcnow
from db.models import ShareLink
from resolvers.ids import decode_id
from tests.browser.conftest import (
    WAIT_MS,
    LiveServer,
    OpenPage,
    StaffApi,
    assert_fits_phone,
    assert_same_document,
    screenshots,
)
from tests.conftest import BACKENDS

ORDER = "id number status shareLinks { id url }"
CREATE = f"""
mutation($input: ServiceOrderCreateInput!) {{
  serviceOrderCreate(input: $input) {{ serviceOrder {{ {ORDER} }} userErrors {{ code message }} }}
}}"""
TRANSITION = """
mutation($id: ID!, $to: ServiceOrderStatus!, $note: String) {
  serviceOrderTransition(input: {id: $id, to: $to, note: $note}) {
    serviceOrder { status } userErrors { code message }
  }
}"""
SET_DIAGNOSIS = """
mutation($input: ServiceOrderSetDiagnosisInput!) {
  serviceOrderSetDiagnosis(input: $input) { serviceOrder { id } userErrors { code message } }
}"""
PART_ADD = """
mutation($input: PartLineAddInput!) {
  partLineAdd(input: $input) { partLine { id } userErrors { code message } }
}"""
COMMENT = """
mutation($id: ID!, $body: String!) {
  serviceOrderComment(input: {orderId: $id, body: $body}) {
    comment { id } userErrors { code message }
  }
}"""
REVOKE = """
mutation($id: ID!) { shareLinkRevoke(input: {id: $id}) { shareLink { isActive } userErrors { code message } } }
"""
STATUS = "query($id: ID!) { serviceOrder(id: $id) { status } }"
RATINGS = """
query { ratingsSummary { total average perStar { stars count } ratings { nodes { stars comment } } } }
"""


async def create_order(staff: StaffApi, model: str = "Galaxy S21") -> dict[str, Any]:
    payload = await staff.mutate(
        "FRONT_DESK",
        CREATE,
        {
            "input": {
                "client": {"name": "Maria Silva", "phone": "+351 912 345 678"},
                "device": {
                    "brand": "Samsung",
                    "model": model,
                    "imei": "490154203237518",
                    "problemReported": "Screen cracked after a fall; touch works",
                },
            }
        },
    )
    order: dict[str, Any] = payload["serviceOrder"]
    assert order["status"] == "PENDING"
    assert len(order["shareLinks"]) == 1
    return order


async def move(staff: StaffApi, role: str, order_id: str, to: str, note: str | None = None) -> None:
    payload = await staff.mutate(role, TRANSITION, {"id": order_id, "to": to, "note": note})
    assert payload["serviceOrder"]["status"] == to


def badge(page: Page) -> Any:
    return page.locator("#status-badge")


async def assert_buttons_named(page: Page) -> None:
    """Every button on screen has an accessible name."""
    buttons = await page.locator("button").filter(visible=True).all()
    assert buttons
    for button in buttons:
        await expect(button).to_have_accessible_name(re.compile(r"\w"))


# --- 1-5: from intake to rating -----------------------------------------------------------


async def test_customer_follows_approves_comments_and_rates(
    live: LiveServer, staff: StaffApi, open_page: OpenPage
) -> None:
    order = await create_order(staff)
    order_id, url = order["id"], order["shareLinks"][0]["url"]
    assert url.startswith(f"{live.base_url}/t/")

    # 1. the customer opens the link on a phone
    customer = await open_page(url)
    page = customer.page
    await expect(page.get_by_role("heading", level=1)).to_have_text(order["number"])
    await expect(badge(page)).to_have_text("Pending")
    await expect(page.locator("#device")).to_have_text("Samsung Galaxy S21")
    await expect(page.locator("#problem-reported")).to_have_text(
        "Screen cracked after a fall; touch works"
    )
    await expect(page.locator("#imei")).to_have_text(re.compile(r"^•+7518$"))
    await expect(page.locator("#live-text")).to_have_text("Live")
    await expect(page.locator("#contact-phone")).to_have_text("Phone: +351 213 000 000")
    await expect(page).to_have_title(f"{order['number']}: Pending")
    await expect(page.get_by_role("button", name="Approve estimate")).to_be_hidden()
    await assert_fits_phone(page)

    # 2. the technician diagnoses and asks for approval: the page follows without a reload
    await move(staff, "TECHNICIAN", order_id, "DIAGNOSING")
    await expect(badge(page)).to_have_text("Diagnosing")
    await staff.mutate(
        "TECHNICIAN",
        SET_DIAGNOSIS,
        {
            "input": {
                "id": order_id,
                "diagnosis": "Broken display assembly; the frame is fine.",
                "estimatedCost": "89.90",
                "labourCost": "45.00",
                "warrantyDays": 90,
            }
        },
    )
    await move(staff, "TECHNICIAN", order_id, "AWAITING_APPROVAL", "Estimate sent by SMS too.")
    await expect(badge(page)).to_have_text("Awaiting approval")
    await expect(page.locator("#diagnosis")).to_have_text(
        "Broken display assembly; the frame is fine."
    )
    await expect(page.locator("#estimate-amount")).to_have_text("€89.90")
    approve = page.get_by_role("button", name="Approve estimate")
    await expect(approve).to_be_visible()
    await expect(page.get_by_role("button", name="Reject")).to_be_visible()
    # the change is announced to screen readers
    announce = page.locator("#announce")
    await expect(announce).to_have_attribute("aria-live", re.compile("assertive|polite"))
    await expect(announce).to_have_text("Status changed: Awaiting approval")
    await expect(page.locator("#timeline li")).to_have_count(3)
    # staff notes on status changes are internal: never shown to the customer
    await expect(page.locator("#timeline")).not_to_contain_text("Estimate sent by SMS too.")
    await assert_same_document(customer)

    # the reject form: opens with focus in its labelled field; Cancel closes it
    await page.get_by_role("button", name="Reject", exact=True).click()
    reason = page.get_by_label("Reason (optional)")
    await expect(reason).to_be_focused()
    await expect(page.get_by_role("button", name="Confirm rejection")).to_be_visible()
    await assert_buttons_named(page)
    await page.get_by_role("button", name="Cancel").click()
    await expect(reason).to_be_hidden()
    # the README's screenshots (UPDATE_DOCS_SCREENSHOTS=1) come from the first backend
    await screenshots(page, f"{live.backend}-1-awaiting-approval", docs=live.backend == BACKENDS[0])

    # 3. the customer approves (with the keyboard on one backend, a tap on the other)
    if live.backend == "sqlite":
        await approve.focus()
        await expect(approve).to_be_focused()
        await page.keyboard.press("Enter")
    else:
        await approve.click()
    await expect(badge(page)).to_have_text("Approved")
    await expect(page.locator("#approved-line")).to_have_text("You approved €89.90.")
    await expect(approve).to_be_hidden()
    await expect(announce).to_have_text("Status changed: Approved")
    await expect(page.locator("#timeline li").last).to_contain_text(
        "Estimate of 89.90 EUR approved via share link."
    )
    assert (await staff.data("OWNER", STATUS, {"id": order_id}))["serviceOrder"][
        "status"
    ] == "APPROVED"

    # 4. a question from the customer, a reply from the shop (live)
    question = page.get_by_label("Ask the shop a question")
    await question.fill("Can I pick it up on Saturday morning?")
    await page.get_by_role("button", name="Send", exact=True).click()
    messages = page.locator("#comments li")
    await expect(messages).to_have_count(1)
    await expect(messages.nth(0)).to_contain_text("Can I pick it up on Saturday morning?")
    await expect(messages.nth(0)).to_contain_text("You")
    await expect(question).to_have_value("")
    await expect(page.locator("#no-comments")).to_be_hidden()
    await staff.mutate(
        "FRONT_DESK", COMMENT, {"id": order_id, "body": "Yes, we open 9:00 to 13:00 on Saturdays."}
    )
    await expect(messages).to_have_count(2)
    await expect(messages.nth(1)).to_contain_text("Yes, we open 9:00 to 13:00 on Saturdays.")
    await expect(messages.nth(1)).to_contain_text("Fixit")
    await assert_same_document(customer)
    await screenshots(page, f"{live.backend}-2-approved-with-messages")

    # 5. repaired, ready, handed back: the rating form appears
    await move(staff, "TECHNICIAN", order_id, "REPAIRING")
    await expect(badge(page)).to_have_text("Repairing")
    await staff.mutate(
        "TECHNICIAN",
        PART_ADD,
        {"input": {"orderId": order_id, "name": "Display assembly", "unitCost": "44.90"}},
    )
    await expect(page.locator("#parts")).to_contain_text("Display assembly")
    await move(staff, "TECHNICIAN", order_id, "READY", "Tested: touch, camera, charging.")
    await expect(badge(page)).to_have_text("Ready for pickup")
    await move(staff, "FRONT_DESK", order_id, "COMPLETED")
    await expect(badge(page)).to_have_text("Completed")
    await expect(page.locator("#total")).to_have_text("€89.90")
    await expect(page.locator("#final")).to_have_text("€89.90")
    await expect(page.locator("#warranty-row")).to_be_visible()
    await expect(page.get_by_role("heading", name="How did we do?")).to_be_visible()

    await page.get_by_role("radio", name="5 stars").check()
    await page.get_by_label("Comment (optional)").fill("Fast and friendly, thank you!")
    await assert_buttons_named(page)
    await screenshots(page, f"{live.backend}-3-rating-form")
    await page.get_by_role("button", name="Send rating").click()
    await expect(page.locator("#rating-done")).to_have_text(
        "You rated us 5 out of 5. Thank you! “Fast and friendly, thank you!”"
    )
    await expect(page.locator("#rating-form")).to_be_hidden()
    await expect(page.locator("#form-error")).to_be_hidden()
    await assert_same_document(customer)
    await screenshots(page, f"{live.backend}-4-completed-rated")

    summary = (await staff.data("OWNER", RATINGS))["ratingsSummary"]
    assert summary["total"] == 1
    assert summary["average"] == 5.0
    assert {s["stars"]: s["count"] for s in summary["perStar"]} == {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}
    assert summary["ratings"]["nodes"] == [{"stars": 5, "comment": "Fast and friendly, thank you!"}]
    assert customer.unexpected_errors() == []


# --- 6: a network loss --------------------------------------------------------------------


async def test_page_catches_up_after_a_network_loss(
    live: LiveServer, staff: StaffApi, open_page: OpenPage
) -> None:
    order = await create_order(staff, "Pixel 7")
    order_id, url = order["id"], order["shareLinks"][0]["url"]
    customer = await open_page(url)
    page = customer.page
    subscribes: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    def on_socket(socket: WebSocket) -> None:
        def on_frame(payload: str | bytes) -> None:
            message = json.loads(payload)
            if message.get("type") == "subscribe":
                subscribes.append(message["payload"]["variables"])
                subscribed.set()

        socket.on("framesent", on_frame)

    page.on("websocket", on_socket)
    await expect(page.locator("#live-text")).to_have_text("Live")
    await move(staff, "FRONT_DESK", order_id, "AWAITING_DIAGNOSIS")
    await expect(badge(page)).to_have_text("Awaiting diagnosis")
    seen = await page.evaluate("lastSeq")
    assert seen >= 2

    # the network goes away: the socket drops and the first retry fails
    subscribed_before = len(subscribes)
    subscribed.clear()
    await customer.context.set_offline(True)
    await page.evaluate("socket.close()")
    await expect(page.locator("#live-text")).to_have_text("Reconnecting…")
    async with page.expect_event("requestfailed", timeout=WAIT_MS):
        pass
    # meanwhile the shop moves the order and writes
    await move(staff, "TECHNICIAN", order_id, "DIAGNOSING")
    await staff.mutate("FRONT_DESK", COMMENT, {"id": order_id, "body": "We are on it."})

    # back online: the page catches up and follows again from where it was
    await customer.context.set_offline(False)
    await expect(page.locator("#live-text")).to_have_text("Live")
    await expect(badge(page)).to_have_text("Diagnosing")
    await expect(page.locator("#comments li")).to_have_count(1)
    # one new subscription, resuming after the last sequence of the view it reloaded
    caught_up = await page.evaluate("lastSeq")
    assert caught_up == seen + 2  # the status change and the comment
    await asyncio.wait_for(subscribed.wait(), WAIT_MS / 1000)
    resumed = subscribes[subscribed_before:]
    assert resumed == [{"t": url.rsplit("/", 1)[1], "after": caught_up}]
    # and it is live again
    await staff.mutate("FRONT_DESK", COMMENT, {"id": order_id, "body": "Diagnosis by noon."})
    await expect(page.locator("#comments li")).to_have_count(2)
    await assert_same_document(customer)
    assert customer.unexpected_errors(allow_network=True) == []


# --- 7: links that do not work ------------------------------------------------------------


async def test_broken_links_are_explained(
    live: LiveServer, staff: StaffApi, open_page: OpenPage
) -> None:
    problem = "#problem-title"

    # unknown
    customer = await open_page(f"{live.base_url}/t/this-link-does-not-exist")
    await expect(customer.page.locator(problem)).to_have_text("Link not found")
    await expect(customer.page.locator("#content")).to_be_hidden()
    await expect(customer.page.locator("#live-text")).to_have_text("Not available")
    await screenshots(customer.page, f"{live.backend}-5-link-not-found")

    # revoked before it was opened
    order = await create_order(staff, "iPhone 13")
    link = order["shareLinks"][0]
    revoked = await staff.mutate("FRONT_DESK", REVOKE, {"id": link["id"]})
    assert revoked["shareLink"]["isActive"] is False
    customer = await open_page(link["url"])
    await expect(customer.page.locator(problem)).to_have_text("Link withdrawn")
    await expect(customer.page.locator("#content")).to_be_hidden()

    # expired
    order = await create_order(staff, "iPhone 14")
    link = order["shareLinks"][0]
    link_pk = decode_id(link["id"], "ShareLink")
    async with live.database.write_session() as session:
        await session.execute(
            update(ShareLink)
            .where(ShareLink.id == link_pk)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    customer = await open_page(link["url"])
    await expect(customer.page.locator(problem)).to_have_text("Link expired")
    await screenshots(customer.page, f"{live.backend}-6-link-expired")

    # revoked while the page is open: it says so at once, without a reload
    order = await create_order(staff, "iPhone 15")
    link = order["shareLinks"][0]
    customer = await open_page(link["url"])
    await expect(customer.page.locator("#live-text")).to_have_text("Live")
    await staff.mutate("FRONT_DESK", REVOKE, {"id": link["id"]})
    await expect(customer.page.locator(problem)).to_have_text("Link withdrawn")
    await expect(customer.page.locator("#content")).to_be_hidden()
    await assert_same_document(customer)
    assert customer.unexpected_errors() == []
