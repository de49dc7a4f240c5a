/**
 * The option table (./table.ts) as text: the `createEngine` options table of docs/LIMITS.md and
 * the defaults the CLI's help shows. test/engine/config-docs.test.ts checks the docs against it.
 */
import { InternalError } from '../../errors.ts'
import { KiB, MiB } from '../../types.ts'
import { engineDefaults } from './resolve.ts'
import { isSpec, type OptionSpec, type Unit } from './schema.ts'
import { optionTable } from './table.ts'

interface Group {
  readonly [key: string]: OptionSpec | Group
}

/** Every option in table order, with its full path. */
export function listOptions(): Array<{ path: string; spec: OptionSpec }> {
  const out: Array<{ path: string; spec: OptionSpec }> = []
  const walk = (group: Group, prefix: string): void => {
    for (const [key, node] of Object.entries(group)) {
      const path = prefix === '' ? key : `${prefix}.${key}`
      if (isSpec(node)) out.push({ path, spec: node })
      else walk(node, path)
    }
  }
  walk(optionTable, '')
  return out
}

/** A number as docs write it: `16 MiB`, `8 MiB + 64 KiB`, `30 s`, `5 min`, `100,000`. */
export function formatNumber(n: number, unit: Unit | undefined): string {
  switch (unit) {
    case 'bytes':
    case 'bytes/s': {
      const suffix = unit === 'bytes/s' ? '/s' : ''
      if (n >= MiB && n % MiB !== 0 && n % KiB === 0) {
        return `${Math.floor(n / MiB)} MiB + ${(n % MiB) / KiB} KiB${suffix}`
      }
      if (n > 0 && n % MiB === 0) return `${n / MiB} MiB${suffix}`
      if (n > 0 && n % KiB === 0) return `${n / KiB} KiB${suffix}`
      return `${grouped(n)}${n === 0 ? '' : ' bytes'}${suffix}`
    }
    case 'ms':
      if (n >= 120_000 && n % 60_000 === 0) return `${n / 60_000} min`
      if (n >= 1000 && n % 1000 === 0) return `${n / 1000} s`
      return `${grouped(n)} ms`
    default:
      return grouped(n)
  }
}

function grouped(n: number): string {
  return n >= 10_000 ? n.toLocaleString('en-US') : String(n)
}

/** The value as docs write it, whatever the spec says about it. */
export function formatValue(spec: OptionSpec, v: unknown): string {
  if (v === undefined) return 'none'
  switch (spec.kind) {
    case 'int':
    case 'number':
      return formatNumber(v as number, spec.unit)
    case 'enum':
      return `\`${String(v)}\``
    case 'multiaddrs':
    case 'codecs':
      return `\`[${(v as string[]).map((a) => `'${a}'`).join(', ')}]\``
    case 'chunking': {
      const c = v as { kind: string; size?: number; minSize?: number; avgSize?: number; maxSize?: number }
      return c.kind === 'fixed'
        ? `fixed ${formatNumber(c.size!, 'bytes')}`
        : `cdc ${[c.minSize!, c.avgSize!, c.maxSize!].map((s) => formatNumber(s, 'bytes')).join(' / ')}`
    }
    default:
      return String(v)
  }
}

/** The default as docs write it: the spec's own words when it has them (a computed default). */
export function defaultText(path: string): string {
  const found = listOptions().find((o) => o.path === path)
  if (found === undefined) throw new InternalError(`no option ${path}`)
  return found.spec.defaultDoc ?? formatValue(found.spec, defaultAt(path))
}

/** The default an engine without options runs with, at `path`. */
export function defaultAt(path: string): unknown {
  let at: unknown = engineDefaults
  for (const k of path.split('.')) at = (at as Record<string, unknown>)[k]
  return at
}

/** The `createEngine` options table of docs/LIMITS.md, one row per option. */
export function optionsMarkdown(): string {
  const rows = listOptions().map(
    ({ path, spec }) => `| \`${path}\` | ${defaultText(path)} | ${spec.doc.replaceAll('|', '\\|')} |`,
  )
  return ['| option | default | meaning |', '|---|---|---|', ...rows].join('\n')
}
