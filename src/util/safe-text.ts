/**
 * Text from a peer (an error message, anything a ticket or a remote side supplies) is data: on a
 * terminal, raw control bytes would be commands. ESC and CSI sequences clear the screen, move the
 * cursor over lines already printed or set the window title; a newline or a carriage return lets a
 * message print a line of its own ("every chunk verified"); bidi overrides reorder what is shown.
 *
 * `escapeControls` keeps text readable and makes every such character visible instead: C0
 * controls (newline and tab included: messages are one line), DEL and C1 controls as `\xNN`;
 * bidi controls, zero-width characters, the byte order mark and the Unicode line and paragraph
 * separators as `\u{NNNN}`; a lone surrogate (not text at all) as U+FFFD.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g

function escapeOne(c: string): string {
  const n = c.charCodeAt(0)
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`
}

/** `text` with every character that could steer a terminal shown as an escape (see above). */
export function escapeControls(text: string): string {
  return text.toWellFormed().replace(UNSAFE, escapeOne)
}

/** Characters JSON.stringify leaves raw that a terminal showing the JSON could still act on. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g

/**
 * One JSON text per line, safe to show on a terminal and equal as data: JSON.stringify escapes C0
 * controls and lone surrogates, and the characters it leaves raw (DEL, C1, bidi and the others
 * above) only ever occur inside strings, where `\uNNNN` means the same character.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
