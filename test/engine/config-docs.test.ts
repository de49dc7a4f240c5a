/**
 * The docs say what the option table (src/engine/config/table.ts) says: the `createEngine`
 * options table in docs/LIMITS.md ("Every option") is generated from it, and every default
 * docs/LIMITS.md gives for an option elsewhere is the table's. After changing the table,
 * `HAUL_WRITE_DOCS=1 npx vitest run test/engine/config-docs.test.ts` rewrites the generated table.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  defaultAt,
  formatNumber,
  formatValue,
  listOptions,
  optionsMarkdown,
} from '../../src/engine/config/docs.ts'
import type { OptionSpec } from '../../src/engine/config/schema.ts'

const LIMITS = new URL('../../docs/LIMITS.md', import.meta.url)
const START = '<!-- options: generated from src/engine/config/table.ts by test/engine/config-docs.test.ts -->'
const END = '<!-- options: end -->'

const options = listOptions()
const byPath = new Map(options.map((o) => [o.path, o.spec]))

describe("docs/LIMITS.md's createEngine options", () => {
  it('are the table, one row per option with its default', () => {
    const text = readFileSync(LIMITS, 'utf8')
    const start = text.indexOf(START)
    const end = text.indexOf(END)
    expect(start, `docs/LIMITS.md lacks ${START}`).toBeGreaterThan(0)
    expect(end).toBeGreaterThan(start)
    const want = `${START}\n\n${optionsMarkdown()}\n\n${END}`
    const have = text.slice(start, end + END.length)
    if (have !== want && process.env.HAUL_WRITE_DOCS === '1') {
      writeFileSync(LIMITS, text.slice(0, start) + want + text.slice(end + END.length))
      return
    }
    expect(have).toBe(want)
  })

  it('name every option of the table', () => {
    const text = readFileSync(LIMITS, 'utf8')
    for (const { path } of options) expect(text).toContain(`| \`${path}\` |`)
  })
})

/** Ways docs write `spec`'s default: as the generated table does, and in the plain units LIMITS uses. */
function renderings(path: string, spec: OptionSpec): string[] {
  const v = defaultAt(path)
  const out = [formatValue(spec, v)]
  if (spec.defaultDoc !== undefined) out.push(spec.defaultDoc)
  if (typeof v === 'number') {
    out.push(String(v), formatNumber(v, spec.unit))
    if (spec.unit === 'ms') out.push(`${v} ms`)
  }
  if (typeof v === 'boolean') out.push(String(v))
  if (spec.kind === 'enum') out.push(String(v))
  if (v === undefined) out.push('unlimited', 'none')
  return out.map(plain)
}

/** Digit groups joined (`100,000`, `30 000` → `100000`, `30000`), backticks kept. */
function plain(s: string): string {
  return s.replace(/(\d)[,\u00a0\u202f ](?=\d{3}\b)/g, '$1')
}

function mentions(cell: string, rendering: string): boolean {
  const escaped = rendering.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(?<![\\w.])${escaped}(?![\\w.])`).test(cell)
}

/** The options a LIMITS cell names: `a.b` / `c` / `d` (later names share the first one's group). */
function optionsIn(cell: string): string[] {
  const names: string[] = []
  let group = ''
  for (const part of cell.split(' / ')) {
    const m = /^`([\w.]+)`/.exec(part.trim())
    if (m === null) return []
    const name = m[1]!
    if (names.length === 0) group = name.includes('.') ? name.slice(0, name.lastIndexOf('.') + 1) : ''
    names.push(names.length === 0 || name.includes('.') ? name : group + name)
  }
  return names
}

describe('docs/LIMITS.md', () => {
  const rows: Array<{ line: number; option: string; def: string }> = []
  let columns: { option: number; def: number } | undefined
  readFileSync(LIMITS, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.startsWith('|')) {
        columns = undefined
        return
      }
      const cells = line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim())
      if (columns === undefined) {
        const option = cells.indexOf('option')
        const def = cells.indexOf('default')
        columns = option >= 0 && def >= 0 ? { option, def } : { option: -1, def: -1 }
        return
      }
      if (columns.option < 0 || cells[0]?.startsWith('---')) return
      rows.push({ line: i + 1, option: cells[columns.option]!, def: plain(cells[columns.def]!) })
    })

  it('has option rows to check', () => expect(rows.length).toBeGreaterThan(40))

  it('names only options the table has, each with its default', () => {
    const wrong: string[] = []
    for (const row of rows) {
      for (const path of optionsIn(row.option)) {
        const leaves = byPath.has(path)
          ? [path]
          : options.filter((o) => o.path.startsWith(`${path}.`)).map((o) => o.path)
        if (leaves.length === 0) wrong.push(`line ${row.line}: ${path} is not an option`)
        for (const leaf of leaves) {
          const said = renderings(leaf, byPath.get(leaf)!)
          if (!said.some((r) => mentions(row.def, r))) {
            wrong.push(`line ${row.line}: ${leaf} defaults to ${said[0]}, LIMITS says "${row.def}"`)
          }
        }
      }
    }
    expect(wrong).toEqual([])
  })
})
