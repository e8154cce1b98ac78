"""The web page's frame: the HTML document around each view, its style and its one script, and
the headers every reply carries.

Everything is inline and nothing is fetched from elsewhere: the page works offline and on a
machine with no internet. The Content-Security-Policy allows no other origin at all; the style and
the script run only with the reply's nonce, so text that slipped through unescaped could still not
run. Progress bars and the chart are inline SVG with sizes as attributes, so no style attribute
(which the policy forbids) is needed.
"""

from __future__ import annotations

import html
import secrets
import time
from urllib.parse import quote

from daemon.http_messages import Response

REFRESH_MS = 2000  # live updates: the view's fragment is fetched again this often

STYLE = """
:root{--ok:#2e7d32;--bad:#c62828;--skip:#f9a825;--rest:#e0e0e0;--ink:#1d1d1f;--mute:#5f6368;--line:#d0d4d9}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#f6f7f9}
header{background:#20303f;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}
header .who{margin-left:auto;font-size:.9em;display:flex;gap:.6rem;align-items:center}
main{padding:.8rem 1.2rem;max-width:1400px}
h1{font-size:1.3rem;margin:.4rem 0 .6rem;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:1.1rem 0 .4rem}
.panel{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.6rem .9rem;margin-bottom:.8rem}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:.3rem 1.2rem}
.facts .k{color:var(--mute);display:block;font-size:.85em}
.panel h2{margin-top:0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
th{font-size:.85em;color:var(--mute);font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.name{overflow-wrap:anywhere;max-width:28rem}
td.why{color:#8a4b00;max-width:26rem;overflow-wrap:anywhere}
.bar{width:160px;height:12px;display:block}
.bar .ok,.legend .ok{fill:var(--ok);background:var(--ok)}
.bar .bad,.legend .bad{fill:var(--bad);background:var(--bad)}
.bar .skip,.legend .skip{fill:var(--skip);background:var(--skip)}
.bar .rest{fill:var(--rest)}
.legend i{display:inline-block;width:.8em;height:.8em;margin:0 .25em 0 .8em;vertical-align:-.05em}
.state{display:inline-block;padding:0 .45em;border-radius:3px;background:#e8eaed;font-size:.9em}
.state.done{background:#dcefdc}.state.failed,.state.rejected{background:#f6d6d6}.state.active{background:#dbe8f7}
pre{background:#fff;border:1px solid var(--line);padding:.6rem;overflow:auto;max-height:28rem;
  white-space:pre-wrap;overflow-wrap:anywhere}
form.filter{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:.2rem 0 .6rem}
input,select,button{font:inherit;padding:.2rem .45rem}
button{cursor:pointer;border:1px solid #8894a0;border-radius:4px;background:#fff}
button.danger{border-color:var(--bad);color:var(--bad)}
.actions{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center;margin:0 0 .6rem}
.actions form{display:inline}
.notice{background:#fff8e1;border:1px solid #f0d47a;padding:.4rem .7rem;border-radius:4px;margin:.4rem 0}
.error{background:#fdecea;border-color:#e6a3a0}
.mute{color:var(--mute)}
.chart{width:100%;max-width:900px;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
.chart .bars rect{fill:#5b8def}.chart .cost{fill:none;stroke:#d2691e;stroke-width:2}
.chart text{font-size:11px;fill:var(--mute)}.chart .axis{stroke:var(--line)}
#stale{color:var(--bad)}
"""

# Fetches the view's live parts again every few seconds and swaps each in by its id: no reload, and
# the forms between them (the filter, the buttons) stay as the operator left them. Without
# JavaScript the page is complete as served and a reload refreshes it.
SCRIPT = """
(function () {
  var main = document.querySelector("main[data-src]");
  if (!main) { return; }
  var src = main.getAttribute("data-src"), every = Number(main.getAttribute("data-every")) || 2000;
  var stale = document.getElementById("stale");
  function swap(text) {
    var holder = document.createElement("template");
    holder.innerHTML = text;
    holder.content.querySelectorAll("[data-live]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (old) { old.replaceWith(fresh); }
    });
    main.setAttribute("data-updates", String(Number(main.getAttribute("data-updates") || 0) + 1));
  }
  function tick() {
    var started = Date.now();
    fetch(src, {credentials: "same-origin", cache: "no-store"}).then(function (reply) {
      if (!reply.ok) { throw new Error(String(reply.status)); }
      return reply.text();
    }).then(function (text) {
      swap(text);
      if (stale) { stale.hidden = true; }
    }).catch(function () {
      if (stale) { stale.hidden = false; }
    }).then(function () {
      // A big state makes a fragment slow to build: then ask less often (the daemon spends at most a tenth).
      window.setTimeout(tick, Math.max(every, 10 * (Date.now() - started)));
    });
  }
  window.setTimeout(tick, every);
}());
"""


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute: names come from users and may hold markup."""
    return html.escape("" if value is None else str(value), quote=True)


def url_part(value: str) -> str:
    """A job id or name inside a path."""
    return quote(value, safe="")


def when(stamp: float | None) -> str:
    if not stamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def document(title: str, body: str, nonce: str, *, header_right: str = "") -> str:
    """A whole page: ``body`` is already escaped HTML (the static part and the live part)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} - batchd</title>
<style nonce="{nonce}">{STYLE}</style>
</head><body>
<header><a href="/">batchd</a><a href="/">jobs</a>
<span id="stale" hidden>not updating: the daemon does not answer</span>
<span class="who">{header_right}</span></header>
{body}
<script nonce="{nonce}">{SCRIPT}</script>
</body></html>"""


def live_part(part_id: str, content: str) -> str:
    """A part of a view that the script replaces with the part of the same id from the fragment."""
    return f'<div id="{esc(part_id)}" data-live>{content}</div>'


def live_page(body: str, src: str) -> str:
    """A view whose live parts are refreshed from ``src`` (which answers them alone)."""
    return f'<main data-src="{esc(src)}" data-every="{REFRESH_MS}">{body}</main>'


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def security_headers(nonce: str) -> list[tuple[str, str]]:
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return [
        ("Content-Security-Policy", policy),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),  # "no-referrer" would make a form's Origin "null"
        ("Cache-Control", "no-store"),
    ]


def html_response(text: str, nonce: str, status: int = 200, extra: list[tuple[str, str]] | None = None) -> Response:
    headers = [("Content-Type", "text/html; charset=utf-8"), *security_headers(nonce), *(extra or [])]
    return Response(status, text.encode("utf-8"), headers)
