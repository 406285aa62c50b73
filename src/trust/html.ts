/**
 * HTML built so that nothing interpolated can become markup: the `markup` tag escapes
 * every value unless it is already `SafeHTML` (made by `markup` itself), so a Host
 * header or a certificate name with `<script>` or quotes is shown as text. (Not named
 * `html`: prettier would reformat such templates as HTML, whitespace and all.)
 */

/** Markup made by `markup` (or `rawHTML` for constant text); every other value is escaped. */
export class SafeHTML {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Text safe in element content and in quoted attribute values.
 *
 * @example escapeHTML('<a title="x">') // → '&lt;a title=&quot;x&quot;&gt;'
 */
export function escapeHTML(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

type Interpolated = SafeHTML | string | number | readonly (SafeHTML | string)[];

function render(value: Interpolated): string {
  if (value instanceof SafeHTML) return value.text;
  if (Array.isArray(value)) return value.map((v: SafeHTML | string) => render(v)).join('');
  return escapeHTML(String(value));
}

/**
 * A template of markup whose values are escaped (arrays are joined, each escaped).
 *
 * @example markup`<p>${'<b>'}</p>`.text // → '<p>&lt;b&gt;</p>'
 */
export function markup(strings: TemplateStringsArray, ...values: Interpolated[]): SafeHTML {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new SafeHTML(out);
}

/** Constant markup written in this program (never a value from a request or a file). */
export function rawHTML(constant: string): SafeHTML {
  return new SafeHTML(constant);
}
