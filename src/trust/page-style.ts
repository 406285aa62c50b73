/**
 * The trust page's one stylesheet, inline (its hash is in the page's CSP). Narrow
 * screens first: nothing is wider than the viewport (long fingerprints and commands
 * wrap), the tab labels wrap onto more lines.
 */
export const PAGE_STYLE = `
:root{color-scheme:light dark;--fg:#1f2328;--bg:#fff;--muted:#59636e;--line:#d1d9e0;--accent:#0969da;--ok:#1a7f37;--bad:#cf222e;--code:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#3d444d;--accent:#4493f8;--ok:#3fb950;--bad:#f85149;--code:#151b23}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.25rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .25rem}
code,pre{font:.875rem/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.fp{overflow-wrap:anywhere;word-break:break-all}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.35rem 1rem;margin:0}
dt{color:var(--muted)}
dd{margin:0;min-width:0;overflow-wrap:anywhere}
.ok{color:var(--ok);font-weight:600}
.bad{color:var(--bad);font-weight:600}
.note{color:var(--muted);font-size:.9rem}
a{color:var(--accent)}
.button{display:inline-block;min-width:6rem;text-align:center;padding:.45rem .9rem;border:1px solid var(--line);border-radius:6px;text-decoration:none;font-weight:600}
pre{margin:.5rem 0;padding:.75rem;background:var(--code);border:1px solid var(--line);border-radius:6px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-all;-webkit-user-select:all;user-select:all}
.tabs{display:flex;flex-wrap:wrap;gap:.25rem}
.tabs>input{position:absolute;opacity:0;width:1px;height:1px;margin:0}
.tabs>label{padding:.4rem .75rem;border:1px solid var(--line);border-radius:6px;cursor:pointer}
.tabs>input:checked+label{background:var(--accent);border-color:var(--accent);color:var(--bg)}
.tabs>input:focus-visible+label{outline:2px solid var(--accent);outline-offset:2px}
.panel{display:none;flex-basis:100%;min-width:0;padding-top:.5rem}
@media (max-width:40rem){dl{grid-template-columns:minmax(0,1fr)}dt{margin-top:.35rem}}
`;

/** Shows the panel whose radio is checked (the inputs come before every panel in .tabs). */
export function tabStyle(ids: readonly string[]): string {
  return `${ids.map((id) => `#tab-${id}:checked~#panel-${id}`).join(',')}{display:block}\n`;
}
