"""The console in a real browser (Debian's Chromium driven by Playwright) on the real stack: sign-in,
the inbox with its clocks and new candidates, an incident's triage, refusal, as-of view and report
download, roles and CSRF, the model card, signals and guideline audits; each page checked with
axe-core for accessibility."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.conftest import TOKENS, Pipeline
from tests.e2e.test_incidents import call, events_of_type, new_incident, register
from tests.integration.helpers import hospital_events, wait_until

pytestmark = pytest.mark.integration
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "test-artefacts" / "console"  # every page as the browser drew it
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this closed network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert AXE.exists(), "axe-core is missing: run deploy/local/bootstrap.sh"
    async with async_playwright() as p:
        found = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield found
        await found.close()


async def new_context(browser: Browser, pipeline: Pipeline) -> BrowserContext:
    """A fresh browser profile. axe-core comes in as an init script: the console's CSP rightly
    refuses a script tag added to its pages."""
    context = await browser.new_context(base_url=pipeline.api_url, accept_downloads=True)
    await context.add_init_script(path=str(AXE))
    return context


async def signed_in(browser: Browser, pipeline: Pipeline, role: str) -> tuple[BrowserContext, Page]:
    context = await new_context(browser, pipeline)
    page = await context.new_page()
    await page.goto("/console/")
    await expect(page).to_have_url(f"{pipeline.api_url}/console/sign-in?next=/console/")
    await page.get_by_label("Token").fill(TOKENS[role])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Incidents", exact=True)).to_be_visible()
    return context, page


async def accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page as it stands (WCAG 2 A and AA rules and
    best practices); a screenshot of it is kept as a test artefact."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    result: dict[str, Any] = await page.evaluate("axe.run(document)")
    problems = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
                for v in result["violations"] if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert not problems, f"{page.url}:\n" + "\n".join(problems)


async def test_the_console_serves_a_safety_officer_and_refuses_what_a_role_may_not_do(
    pipeline: Pipeline, db, browser: Browser, tmp_path: Path
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # A chatbot of this test's own, so that its inbox holds only this test's incidents.
    model = f"console-chat-{uuid.uuid4().hex[:6]}"
    registry = [e for e in hospital_events(6, seed=909) if e["event_type"].startswith("Model")]
    chatbot = [e for e in registry if e["model_id"] == "symptom-chat"]
    registry += [dict(e, model_id=model, event_id=str(uuid.uuid4())) for e in chatbot]
    await register(pipeline, db, registry)

    def incident(aware: timedelta) -> httpx.Response:
        return call(pipeline, "POST", "/v1/incidents", json=new_incident(datetime.now(UTC) - aware, model_id=model))

    overdue, fresh = incident(timedelta(days=40)), incident(timedelta(hours=1))
    assert overdue.status_code == fresh.status_code == 201, overdue.text + fresh.text
    late_id, iid = overdue.json()["incident_id"], fresh.json()["incident_id"]

    # Sign-in: unknown and machine tokens are refused in words; a person's token opens a session.
    anonymous = await new_context(browser, pipeline)
    page = await anonymous.new_page()
    await page.goto("/console/sign-in")
    await accessible(page, "sign-in")
    for token, words in (("not-a-token", "not known to Vigil"), (TOKENS["emitter"], "sends events and has no console")):
        await page.get_by_label("Token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text(words)
    await anonymous.close()

    officer, page = await signed_in(browser, pipeline, "safety_officer")
    answer = await page.goto("/console/")
    assert answer is not None
    headers = answer.headers
    assert "default-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    cookie = next(c for c in await officer.cookies() if c["name"] == "vigil_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKENS["safety_officer"] not in cookie["value"]

    # The inbox of the test's model: the overdue incident first, marked in words as well as colour;
    # the clocks count down.
    await page.get_by_label("Model").select_option(model)
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("#inbox-rows tr[data-incident]")
    await expect(rows.first).to_have_attribute("data-incident", late_id)
    await expect(rows.first).to_contain_text("OVERDUE")
    countdown = page.locator(f'tr[data-incident="{iid}"] time[data-due]').first
    await countdown.evaluate("el => { el.textContent = 'stale' }")
    await expect(countdown).to_have_text(re.compile(r"^\d+ (d \d+ h|h \d+ min) (left|overdue)$"))
    await accessible(page, "inbox")

    # An incident reported meanwhile appears without a reload (the page fetches its rows every 5 s).
    newest = incident(timedelta(minutes=5))
    await expect(page.locator(f'tr[data-incident="{newest.json()["incident_id"]}"]')).to_be_visible(timeout=20_000)
    await expect(page.locator("#inbox-news")).to_contain_text("new incident")

    # Filters combine: none of this model's incidents is closed.
    await page.get_by_label("Status").select_option("closed")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#inbox-rows")).to_contain_text("No incidents match")

    # Bad input in a query or a path: the reason in words, in the console's frame, never a 500.
    await page.goto("/console/?status=bogus")
    await expect(page.locator("#err-status")).to_have_text("'bogus' is not a status; showing all")
    for path, status, words in (
        ("/console/signals?days=many", 422, "days: Input should be a valid integer"),
        ("/console/signals?kind=Nonsense", 200, "'Nonsense' is not a kind of signal"),
        ("/console/incidents/not-an-id", 422, "incident_id: Input should be a valid UUID"),
        (f"/console/incidents/{uuid.uuid4()}", 404, "no incident"),
        ("/console/models/no-such-model", 404, "no model 'no-such-model' is registered"),
    ):
        answer = await page.goto(path)
        assert answer is not None and answer.status == status, path
        await expect(page.locator("main")).to_contain_text(words)

    # The overdue incident's page: a field left empty is refused next to it, and nothing changes.
    await page.goto(f"/console/incidents/{late_id}")
    await accessible(page, "incident")
    await page.locator("#t-rationale").evaluate("el => el.removeAttribute('required')")
    await page.get_by_role("button", name="Triage").click()
    await expect(page.locator("#err-triage-rationale")).to_have_text("Field required")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("reported")
    await accessible(page, "incident-invalid")

    # Triage through the decider, then a refusal in the decider's words, then the decision.
    before_triage = datetime.now(UTC)
    await page.wait_for_timeout(1100)
    await page.get_by_label("Harm").select_option("serious_deterioration")
    await page.get_by_label("Causality").select_option("probable")
    await page.locator("#t-rationale").fill("missed ACS in the chatbot's advice")
    await page.get_by_role("button", name="Triage").click()
    await expect(page.get_by_role("status")).to_contain_text("Recorded: triaged")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("triaged")
    await page.locator("summary", has_text="Close").click()
    await page.locator("#c-rationale").fill("closing early")
    await page.get_by_role("button", name="Close the incident").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "cannot Close an incident that is triaged; allowed: Triage, DecideReportability"
    )
    await page.get_by_label("Reportable: start the clocks").check()
    await page.locator("#r-rationale").fill("serious deterioration, probably caused by the advice")
    await page.get_by_role("button", name="Decide").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("assessed")
    clocks = page.locator("section", has=page.get_by_role("heading", name="Reporting clocks")).locator("tbody tr")
    await expect(clocks.filter(has_text="eu-mdr")).to_contain_text("death or serious deterioration")
    await expect(clocks.filter(has_text="(provisional)")).to_have_count(0)
    await page.screenshot(path=str(SHOTS / "incident.png"), full_page=True)

    # As of before the triage: the untriaged state, read and not changed.
    await page.get_by_label("As of (UTC)").fill(before_triage.strftime("%Y-%m-%dT%H:%M:%S"))
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("reported")
    await expect(page.get_by_role("button", name="Triage")).to_have_count(0)
    await accessible(page, "incident-as-of")

    # Reports download as PDF (its id in the rendered text) and JSON.
    await page.goto(f"/console/incidents/{late_id}")
    async with page.expect_download() as pdf:
        await page.get_by_role("link", name="EU MIR (PDF)").click()
    saved = tmp_path / "mir.pdf"
    await (await pdf.value).save_as(saved)
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(saved), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
    text = subprocess.run(["pdftotext", str(saved), "-"], capture_output=True, text=True, check=True).stdout
    assert late_id in text
    async with page.expect_download() as mir:
        await page.get_by_role("link", name="EU MIR (JSON)").click()
    assert json.loads(Path(await (await mir.value).path()).read_text())["form"].startswith("EU MIR")

    async def viewed_by_officer() -> bool:
        return any(e["by"] == "dr-meyer" for e in await events_of_type(db, "IncidentViewed", late_id))

    await wait_until(viewed_by_officer, 30, "the console's views in the audit trail")

    # CSRF: a form post without the session's token is refused, and nothing changes.
    forged = await officer.request.post(
        f"/console/incidents/{late_id}/reportability", form={"reportable": "true", "rationale": "forged"}
    )
    assert forged.status == 403 and "form token" in await forged.text()

    # An auditor reads but cannot act: no forms, and a post with a valid token is refused 403.
    auditor, page = await signed_in(browser, pipeline, "auditor")
    await page.goto(f"/console/incidents/{late_id}")
    await expect(page.get_by_role("heading", name="Decide")).to_have_count(0)
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    refused = await auditor.request.post(
        f"/console/incidents/{late_id}/reportability", form={"csrf": csrf or "", "reportable": "true", "rationale": "x"}
    )
    assert refused.status == 403 and "may not change incidents" in await refused.text()
    assert call(pipeline, "GET", f"/v1/incidents/{late_id}", role="auditor").json()["status"] == "assessed"

    # Models and their cards, with the chart an image of the console's own.
    await page.get_by_role("link", name="Models").click()
    await expect(page.get_by_role("link", name="symptom-chat")).to_be_visible()
    await accessible(page, "models")
    await page.get_by_role("link", name="symptom-chat").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Model card: AskNurse")
    await expect(page.get_by_role("heading", name="Intended use")).to_be_visible()
    await accessible(page, "model-card")

    # Signals and guideline audits: the auditor sees the audit's counts, not the patients' tokens.
    await page.get_by_role("link", name="Signals").click()
    await expect(page.get_by_role("heading", name="Signals")).to_be_visible()
    await accessible(page, "signals")
    guideline_id = f"acs-{uuid.uuid4().hex[:6]}"
    change = {
        "event_type": "GuidelineChanged",
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "guideline_id": guideline_id,
        "title": "Chest pain: escalate all adults",
        "effective_at": datetime.now(UTC).isoformat(),
        "affected_use_cases": [registry[0]["use_case"]],
    }
    await register(pipeline, db, [change])
    await page.goto(f"/console/guidelines/{guideline_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Chest pain")
    await expect(page.get_by_text("sees the counts only")).to_be_visible()
    await accessible(page, "guideline-audit")
    assert (await auditor.request.get(f"/console/guidelines/{guideline_id}/cases.csv")).status == 403
    await auditor.close()

    page = await officer.new_page()
    await page.goto("/console/guidelines")
    await page.get_by_role("link", name=guideline_id).click()
    await expect(page.get_by_role("link", name="Download as CSV")).to_be_visible()
    cases = await officer.request.get(f"/console/guidelines/{guideline_id}/cases.csv")
    assert cases.status == 200 and "patient_ref" in await cases.text()

    # Sign-out ends the session: the inbox asks for a sign-in again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{pipeline.api_url}/console/sign-in")
    await officer.close()
    assert httpx.get(pipeline.api_url + "/console/", follow_redirects=False).status_code == 303
