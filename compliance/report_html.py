"""``report.html``: the report's facts as one self-contained page (inline CSS and SVG, no script).

Rendered from :class:`~compliance.report_facts.ReportFacts` alone, so the page can say nothing that
``report.json`` does not. Every value is HTML-escaped. Sections carry stable ids (``privacy``,
``consent``, ``rejections``, ``fairness``, ``audit``, ``rounds``, ``art30``) that tests and readers
can link to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from compliance.report_facts import AuditStatus, FairnessFacts, ReportFacts, SiteFacts
from compliance.report_svg import Bar, bar_chart

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1d232a;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:2px solid #d6dce3;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #d6dce3;padding:.25em .6em;text-align:left}
th{background:#f1f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#176c2e;font-weight:600}.warn{color:#8a5a00;font-weight:600}.bad{color:#a3171c;font-weight:600}
.chart text{font:12px system-ui,sans-serif;fill:#1d232a}.chart .track{fill:#eef1f4}
.chart .bar.neutral{fill:#4a78a8}.chart .bar.good{fill:#2f8f4e}.chart .bar.warn{fill:#c98a12}
.chart .bar.bad{fill:#c0392b}.chart .marker{stroke:#1d232a;stroke-width:2}
.note{color:#4d5966}code{font-size:.9em}
"""
SECTIONS = {"privacy": "Privacy budget: epsilon spent per site", "consent": "Consent funnel",
            "rejections": "Rejected items by reason", "fairness": "Subgroup fairness per site",
            "audit": "Audit trail verification", "rounds": "Training rounds",
            "gdpr": "GDPR requests: access (Art. 15) and erasure (Art. 17)",
            "art30": "Record of processing activities (GDPR Art. 30)"}
STATUS_CLASS = {"intact": "ok", "unanchored": "warn", "tampered": "bad"}
FIGURES = ("n", "positives", "prevalence", "auroc", "tpr", "fpr", "ppv", "selection_rate",
           "calibration_error")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if 0 < abs(value) < 0.001 else f"{value:.3f}" if abs(value) < 1000 else \
            f"{value:.0f}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{escape(_fmt(c))}</td>' if isinstance(c, int | float) and not isinstance(c, bool)
        else f"<td>{escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{escape(SECTIONS[key])}</h2>{body}</section>'


def _privacy(sites: list[SiteFacts]) -> str:
    bars = []
    for s in sites:
        p = s.privacy
        budget = "budget unknown" if p.epsilon_budget is None else f"of {p.epsilon_budget:g}"
        tone = "bad" if p.over_budget else "good"
        bars.append(Bar(s.site, p.epsilon_spent, f"{p.epsilon_spent:.3f} {budget}", tone, p.epsilon_budget))
    chart = bar_chart(bars, title="epsilon spent (bar) against each site's budget (mark)")
    summary = _table(["site", "epsilon spent", "budget", "remaining", "delta", "budget from",
                      "trail's latest epsilon total", "spends"],
                     [(s.site, s.privacy.epsilon_spent, s.privacy.epsilon_budget, s.privacy.epsilon_remaining,
                       s.privacy.delta, s.privacy.budget_source, s.privacy.audit_epsilon_total,
                       len(s.privacy.spends)) for s in sites])
    spends = _table(["site", "run", "round", "epsilon after", "delta", "steps", "noise multiplier",
                     "sample rate", "accountant", "recorded"],
                    [(s.site, r.run_id, r.round, r.epsilon_after, r.delta, r.steps, r.noise_multiplier,
                      r.sample_rate, r.mechanism, r.created_at) for s in sites for r in s.privacy.spends])
    return _section("privacy", chart + summary + "<h3>Ledger (every recorded spend)</h3>" + spends)


def _consent(sites: list[SiteFacts]) -> str:
    parts = []
    for s in sites:
        c = s.consent
        if c is None:
            parts.append(f"<h3>{escape(s.site)}</h3><p class=note>no consent decision in the verified "
                         "trail</p>")
            continue
        bars = [Bar("patients found", c.discovered, str(c.discovered))]
        bars += [Bar(f"excluded: {code}", n, str(n), "warn") for code, n in sorted(c.decisions.items())]
        bars.append(Bar("included in the cohort", c.included, str(c.included), "good"))
        if c.trained is not None:
            bars.append(Bar("in the training split", c.trained, str(c.trained), "good"))
        walk = f"round {c.round}" if c.round is not None else "site prepare"
        parts.append(f"<h3>{escape(s.site)} <span class=note>({escape(c.policy)} policy; latest walk: "
                     f"{escape(walk)})</span></h3>" + bar_chart(bars, title=f"consent funnel of {s.site}"))
    return _section("consent", "".join(parts))


def _rejections(sites: list[SiteFacts]) -> str:
    rows = [(s.site, modality, reason, n) for s in sites for modality, d in s.data.items()
            for reason, n in sorted(d.rejected.items())]
    bars = [Bar(f"{site} {reason}", n, str(n), "warn") for site, _, reason, n in rows]
    chart = bar_chart(bars, title="rejected items by site and reason") if bars else \
        "<p class=note>no item was rejected in the latest walk of any site</p>"
    items = _table(["site", "modality", "items found", "accepted", "rejected"],
                   [(s.site, m, d.discovered, d.accepted, sum(d.rejected.values()))
                    for s in sites for m, d in s.data.items()])
    return _section("rejections", chart + _table(["site", "modality", "reason", "items"], rows) + items)


def _fairness_block(name: str, facts: FairnessFacts | None, note: str | None) -> str:
    if facts is None:
        return f"<h3>{escape(name)}</h3><p class=note>{escape(note or 'not available')}</p>"
    table = facts.table
    bars, rows, withheld = [], [], []
    for attribute, a in sorted(table.attributes.items()):
        for label, gap in (("demographic parity", a.demographic_parity_difference),
                           ("equalized odds", a.equalized_odds_difference)):
            if gap is not None:
                bars.append(Bar(f"{attribute}: {label}", gap, f"{gap:.3f}", "warn" if gap > 0.1 else "good"))
        for group, m in a.metrics().items():
            rows.append((attribute, group, *(vars(m)[f] for f in FIGURES)))
        withheld.append((attribute, len(a.groups), a.suppressed_cells, a.suppressed_n))
    chart = bar_chart(bars, title=f"fairness gaps of {name}", scale=1.0) if bars else \
        "<p class=note>no gap: fewer than two groups of any attribute are published</p>"
    return (f"<h3>{escape(name)} <span class=note>({escape(facts.source)}; k = {table.k}, threshold "
            f"{table.threshold:g})</span></h3>" + chart
            + (_table(["attribute", "group", *FIGURES], rows) if rows else "")
            + _table(["attribute", "groups published", f"cells withheld (n < {table.k} or revealing)",
                      "patients in withheld cells"], withheld))


def _fairness(facts: ReportFacts) -> str:
    intro = ("<p class=note>Per group of each sensitive attribute: only cells of at least k patients are "
             "shown; smaller cells, and any cell that would reveal one, are withheld and only counted.</p>")
    blocks = [_fairness_block(s.site, s.fairness, s.fairness_note) for s in facts.sites]
    if facts.federated_fairness is not None:
        blocks.append(_fairness_block("federation (all sites)", facts.federated_fairness, None))
    return _section("fairness", intro + "".join(blocks))


def _status_cell(status: str) -> str:
    return f'<span class="{STATUS_CLASS[status]}">{escape(status)}</span>'


def _audit_row(name: str, a: AuditStatus) -> str:
    head = f"{a.head['sequence']} {str(a.head['hash'])[:16]}" if a.head else "n/a"
    anchors = "; ".join(f"{p['code']}: {p['message']}" for p in a.anchor_problems or []) or \
        ("n/a" if a.anchor_problems is None else "agrees with the coordinator")
    cells = [name, a.entries, head, a.message, anchors, a.key_fingerprint or "n/a",
             "pinned" if a.key_pinned else "self-asserted"]
    return (f"<tr><td>{escape(name)}</td><td>{_status_cell(a.status)}</td>"
            + "".join(f"<td>{escape(_fmt(c))}</td>" for c in cells[1:]) + "</tr>")


def _audit(facts: ReportFacts) -> str:
    trails = [(f"site {s.site}", s.audit) for s in facts.sites]
    if facts.coordinator is not None:
        trails.append(("coordinator", facts.coordinator))
    head = "".join(f"<th>{h}</th>" for h in ("trail", "status", "verified entries", "head", "verification",
                                               "cross-check", "key fingerprint", "key"))
    rows = "".join(_audit_row(name, a) for name, a in trails)
    events = _table(["trail", "event", "verified entries"],
                    [(name, e, n) for name, a in trails for e, n in sorted(a.events.items())])
    return _section("audit", f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
                    "<h3>Verified entries by event</h3>" + events)


def _rounds(facts: ReportFacts) -> str:
    model = facts.model
    if model is None or not model.rounds:
        return _section("rounds", "<p class=note>no coordinator checkpoint history in this report's "
                        "input</p>")
    rows = [(r.round, ", ".join(f"{s} ({e:.3f})" for s, e in sorted(r.trained.items())) or "none",
             ", ".join(f"{s} ({code})" for s, code in sorted(r.refused.items())) or "none", r.auroc, r.loss)
            for r in model.rounds]
    return _section("rounds", f"<p>run {escape(model.run_id or 'n/a')}, {escape(model.fusion or 'n/a')} "
                    "fusion</p>" + _table(["round", "trained (epsilon after)", "refused", "federated AUROC",
                                           "loss"], rows))


def _record_value(value: Any) -> str:
    if isinstance(value, dict):
        return "<dl>" + "".join(f"<dt>{escape(str(k).replace('_', ' '))}</dt><dd>{_record_value(v)}</dd>"
                                for k, v in value.items()) + "</dl>"
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{_record_value(v)}</li>" for v in value) + "</ul>"
    return escape(_fmt(value))


def _gdpr(sites: list[SiteFacts]) -> str:
    with_register = [s for s in sites if s.gdpr is not None]
    if not with_register:
        return _section("gdpr", '<p class="note">No site has received a GDPR request.</p>')
    summary = _table(["site", "access requests", "erasures"],
                     [(s.site, s.gdpr.access_requests, len(s.gdpr.erasures)) for s in with_register])
    erasures = _table(["site", "erased at", "released rounds that used the patient", "residual epsilon",
                       "residual delta", "what it means"],
                      [(s.site, e.erased_at, e.rounds_used, e.residual_epsilon, e.residual_delta, e.statement)
                       for s in with_register for e in s.gdpr.erasures])
    return _section("gdpr", summary + "<h3>Erasures and the influence the DP guarantee still allows</h3>"
                    + erasures)


def _art30(record: dict[str, Any] | None) -> str:
    if record is None:
        return _section("art30", "<p class=note>no processing record was available for this report</p>")
    return _section("art30", _record_value(record))


def _overview(facts: ReportFacts) -> str:
    verdict = ('<p class="ok">No problem found.</p>' if not facts.problems else
               '<p class="bad">Problems found:</p><ul>'
               + "".join(f"<li>{escape(p)}</li>" for p in facts.problems) + "</ul>")
    notes = ("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in facts.notes) + "</ul>"
             if facts.notes else "")
    scope = "a federated run" if facts.kind == "run" else "one site"
    return (f'<section id="overview"><p>Study <b>{escape(facts.study)}</b>, {scope} '
            f"({len(facts.sites)} site{'s' if len(facts.sites) != 1 else ''}); read from "
            f"<code>{escape(facts.source)}</code> at {escape(facts.generated_at)}. Machine-readable: "
            f"<code>report.json</code>.</p>{verdict}{notes}</section>")


def render_html(facts: ReportFacts) -> str:
    title = f"Auditor report: {facts.study}"
    body = "".join([_overview(facts), _privacy(facts.sites), _consent(facts.sites), _rejections(facts.sites),
                    _fairness(facts), _audit(facts), _rounds(facts), _gdpr(facts.sites),
                    _art30(facts.processing_record)])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")
