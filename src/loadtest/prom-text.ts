/**
 * A reader for the Prometheus text exposition format (version 0.0.4), as much of it as the
 * load-test harness scrapes: sample lines with optional labels and timestamp; `#` lines (HELP,
 * TYPE, comments) and blank lines skipped. prom-client writes this format but has no reader.
 */
import { InvalidArgumentError } from '../errors.ts'

export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

const NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/y
const LABEL = /[a-zA-Z_][a-zA-Z0-9_]*/y

/** Every sample of `text`, in order; throws InvalidArgumentError naming the first line it cannot read. */
export function parseExposition(text: string): PromSample[] {
  const out: PromSample[] = []
  const lines = text.split('\n')
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const s = parseLine(line)
    if (s === undefined)
      throw new InvalidArgumentError(`not a Prometheus sample at line ${i + 1}: ${JSON.stringify(raw)}`)
    out.push(s)
  }
  return out
}

/** `name{a="x",b="y"}` with the labels sorted by name: one key per series, however they were written. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const names = Object.keys(labels).sort()
  if (names.length === 0) return name
  const body = names.map((k) => `${k}="${escapeValue(labels[k]!)}"`).join(',')
  return `${name}{${body}}`
}

/** The metric name of a series key. */
export function keyName(key: string): string {
  const at = key.indexOf('{')
  return at === -1 ? key : key.slice(0, at)
}

function parseLine(line: string): PromSample | undefined {
  NAME.lastIndex = 0
  const name = NAME.exec(line)?.[0]
  if (name === undefined) return undefined
  // Blanks may stand between the name and its labels.
  let at = skipSpaces(line, name.length)
  const labels: Record<string, string> = {}
  if (line[at] !== '{') at = name.length
  else {
    at++
    for (;;) {
      at = skipSpaces(line, at)
      if (line[at] === '}') break
      LABEL.lastIndex = at
      const label = LABEL.exec(line)?.[0]
      if (label === undefined) return undefined
      at = skipSpaces(line, at + label.length)
      if (line[at] !== '=') return undefined
      at = skipSpaces(line, at + 1)
      if (line[at] !== '"') return undefined
      const v = readQuoted(line, at + 1)
      if (v === undefined) return undefined
      labels[label] = v.value
      at = skipSpaces(line, v.end)
      if (line[at] === ',') at++
      else if (line[at] !== '}') return undefined
    }
    at++
  }
  // The value, then an optional timestamp (ms), separated by blanks.
  if (line[at] !== ' ' && line[at] !== '\t') return undefined
  const rest = line
    .slice(at)
    .trim()
    .split(/[ \t]+/)
  if (rest.length > 2) return undefined
  const value = parseValue(rest[0]!)
  if (value === undefined) return undefined
  if (rest.length === 2 && !/^-?\d+$/.test(rest[1]!)) return undefined
  return { name, labels, value }
}

function skipSpaces(line: string, at: number): number {
  while (line[at] === ' ' || line[at] === '\t') at++
  return at
}

/** A label value from just after its opening quote: `\\`, `\"` and `\n` unescaped. */
function readQuoted(line: string, at: number): { value: string; end: number } | undefined {
  let value = ''
  while (at < line.length) {
    const c = line[at]!
    if (c === '"') return { value, end: at + 1 }
    if (c === '\\') {
      const n = line[at + 1]
      if (n === 'n') value += '\n'
      else if (n === '\\' || n === '"') value += n
      else return undefined
      at += 2
    } else {
      value += c
      at++
    }
  }
  return undefined
}

function parseValue(s: string): number | undefined {
  if (s === 'NaN') return Number.NaN
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY
  if (s === '-Inf') return Number.NEGATIVE_INFINITY
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return undefined
  return Number(s)
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
