"""The review UI's one stylesheet and one script, served from the app itself (no external assets, and a
Content-Security-Policy that allows nothing else).

The script only adds keyboard shortcuts; every action is an ordinary form, so the UI works without it.
Item page: a approve, r reject (focus the reason), e edit (focus the JSON), j or n next item, k previous,
Ctrl+Enter submits the form being typed in, Escape leaves a text field. Queue page: j/k move, Enter or o
opens, n opens the first item.
"""

from __future__ import annotations

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#1d2b3a;color:#fff}
header a{color:#fff}header .who{margin-left:auto}header form{display:inline;margin:0}
main{padding:1em}h1{font-size:1.25em;margin:.2em 0 .6em}h2{font-size:1.05em;margin:.4em 0}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #e2e5e9;padding:.3em .5em;text-align:left;vertical-align:top}
tr.sel{background:#fff6d6}.muted{color:#69737d}.num{text-align:right}
.panes{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:1em}
.pane{background:#fff;border:1px solid #e2e5e9;padding:.6em;overflow:auto;max-height:70vh}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:12px/1.4 ui-monospace,monospace}
.actions{display:grid;grid-template-columns:1fr 2fr 3fr;gap:1em;margin-top:1em}
.actions form{background:#fff;border:1px solid #e2e5e9;padding:.6em}
textarea{width:100%;box-sizing:border-box;font:12px/1.4 ui-monospace,monospace}
.error{background:#fde8e8;border:1px solid #e5a4a4;padding:.6em;margin-bottom:1em}
.notice{background:#e8f3fd;border:1px solid #a4c8e5;padding:.6em;margin-bottom:1em}
.decided{background:#eaf7ea;border:1px solid #9fd09f;padding:.6em;margin-bottom:1em}
kbd{border:1px solid #aab;border-radius:3px;padding:0 .3em;font-size:.85em;background:#fff;color:#333}
.login{max-width:22em;margin:4em auto;background:#fff;border:1px solid #e2e5e9;padding:1.2em}
.login label{display:block;margin:.5em 0}.login input{width:100%;box-sizing:border-box}
nav.pages{margin:.8em 0}nav.pages a{margin-right:1em}
"""

JS = """
(function () {
  function typing(t) { return t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.tagName === 'SELECT'); }
  function open(href) { window.location.href = href; return true; }
  function go(id) { var a = document.getElementById(id); return a ? open(a.href) : false; }
  function focus(id) { var f = document.getElementById(id); if (f) { f.focus(); return true; } return false; }
  function submit(id) { var f = document.getElementById(id); if (f) { f.requestSubmit(); return true; } return false; }
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr[data-href]'));
  var sel = -1;
  function select(i) {
    if (!rows.length) { return; }
    if (sel >= 0) { rows[sel].classList.remove('sel'); }
    sel = Math.max(0, Math.min(rows.length - 1, i));
    rows[sel].classList.add('sel'); rows[sel].scrollIntoView({block: 'nearest'});
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.altKey || ev.metaKey) { return; }
    var t = ev.target;
    if (typing(t)) {
      if (ev.key === 'Escape') { t.blur(); ev.preventDefault(); }
      else if (ev.key === 'Enter' && ev.ctrlKey && t.form) { t.form.requestSubmit(); ev.preventDefault(); }
      return;
    }
    if (ev.ctrlKey) { return; }
    var done = false;
    if (document.body.dataset.page === 'item') {
      if (ev.key === 'a') { done = submit('approve-form'); }
      else if (ev.key === 'r') { done = focus('reject-reason'); }
      else if (ev.key === 'e') { done = focus('edit-output'); }
      else if (ev.key === 'j' || ev.key === 'n') { done = go('next-item'); }
      else if (ev.key === 'k') { done = go('prev-item'); }
      else if (ev.key === 'q') { done = go('queue-link'); }
    } else if (document.body.dataset.page === 'queue') {
      if (ev.key === 'j') { select(sel + 1); done = true; }
      else if (ev.key === 'k') { select(sel - 1); done = true; }
      else if ((ev.key === 'Enter' || ev.key === 'o') && sel >= 0) { done = open(rows[sel].dataset.href); }
      else if (ev.key === 'n' && rows.length) { done = open(rows[0].dataset.href); }
    }
    if (done) { ev.preventDefault(); }
  });
})();
"""
