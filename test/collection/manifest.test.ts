import { describe, expect, it } from 'vitest'
import {
  buildManifest,
  decodeManifest,
  encodeManifest,
  foldedCollisions,
  MAX_ENTRIES,
  MAX_MANIFEST_BYTES,
  type Manifest,
  type ManifestEntry,
} from '../../src/collection/manifest.ts'
import {
  checkedPath,
  componentProblem,
  foldedKey,
  MAX_DEPTH,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  STAGING_NAME,
  safeName,
} from '../../src/collection/names.ts'
import { ManifestInvalidError, TicketInvalidError } from '../../src/errors.ts'
import { decodeSwarmTicket, encodeSwarmTicket, joinTickets } from '../../src/ticket/multi-ticket.ts'
import { encodeTicket } from '../../src/ticket/ticket.ts'
import { base32Decode } from '../../src/util/base32.ts'
import { legacyV2, seal, ticketText, v3Body } from '../support/tickets.ts'

const enc = new TextEncoder()
const packCid = Uint8Array.from({ length: 32 }, (_, i) => 255 - i)

/** One entry as it goes on the wire: any kind code, any mode, any path or target bytes. */
interface RawEntry {
  readonly kind: number
  readonly path: string | Uint8Array
  readonly mode?: number
  readonly size?: number | bigint
  readonly target?: string | Uint8Array
}

interface RawManifest {
  readonly magic?: string
  readonly version?: number
  readonly name?: string | Uint8Array
  readonly packSize?: number | bigint
  readonly count?: number
  readonly entries?: readonly RawEntry[]
}

const utf8 = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? enc.encode(s) : s)

/**
 * A manifest written byte by byte, so that anything encodeManifest cannot express (an unknown
 * kind, a mode past 0o7777, bytes that are not UTF-8, a count that disagrees with the entries)
 * can be handed to decodeManifest. The pack size defaults to the sum of the file sizes.
 */
function raw(m: RawManifest): Uint8Array {
  const out: number[] = []
  const u16 = (n: number): void => {
    out.push(n >> 8, n & 0xff)
  }
  const u64 = (n: number | bigint): void => {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt(n))
    out.push(...b)
  }
  out.push(...utf8(m.magic ?? 'haulcol\0'), m.version ?? 1)
  const name = utf8(m.name ?? 'coll')
  out.push(name.length, ...name, ...packCid)
  const entries = m.entries ?? []
  u64(m.packSize ?? entries.reduce((n, e) => n + (e.kind === 1 ? BigInt(e.size ?? 0) : 0n), 0n))
  const count = m.count ?? entries.length
  out.push(count >>> 24, (count >>> 16) & 0xff, (count >>> 8) & 0xff, count & 0xff)
  for (const e of entries) {
    const path = utf8(e.path)
    out.push(e.kind)
    u16(e.mode ?? 0o644)
    u16(path.length)
    out.push(...path)
    if (e.kind === 1) u64(e.size ?? 0)
    if (e.kind === 3) {
      const target = utf8(e.target ?? '')
      u16(target.length)
      out.push(...target)
    }
  }
  return Uint8Array.from(out)
}

const file = (path: string | Uint8Array, size: number | bigint = 0): RawEntry => ({ kind: 1, path, size })
const dir = (path: string): RawEntry => ({ kind: 2, path, mode: 0o755 })
const link = (path: string, target: string | Uint8Array): RawEntry => ({ kind: 3, path, mode: 0o777, target })

/** The ManifestInvalidError decodeManifest throws; fails the test when it accepts or throws anything else. */
function refusal(bytes: Uint8Array): ManifestInvalidError {
  let thrown: unknown
  try {
    decodeManifest(bytes)
  } catch (err) {
    thrown = err
  }
  expect(thrown, 'decodeManifest accepted a hostile manifest').toBeInstanceOf(ManifestInvalidError)
  expect((thrown as ManifestInvalidError).code).toBe('MANIFEST_INVALID')
  return thrown as ManifestInvalidError
}

/** `n` folders inside one another, each named by `part(i)`, listed outermost first. */
function nested(n: number, part: (i: number) => string): RawEntry[] {
  const out: RawEntry[] = []
  let path = ''
  for (let i = 0; i < n; i++) {
    path = path === '' ? part(i) : `${path}/${part(i)}`
    out.push(dir(path))
  }
  return out
}

describe('manifest encoding', () => {
  it('round-trips every kind, with offsets as the running sum of file sizes', () => {
    const m = buildManifest('photos', packCid, [
      { kind: 'file', path: 'b.bin', mode: 0o600, size: 7 },
      { kind: 'dir', path: 'a', mode: 0o750, size: 0 },
      { kind: 'file', path: 'a/x', mode: 0o755, size: 3 },
      { kind: 'symlink', path: 'a/l', mode: 0o777, size: 0, target: '../b.bin' },
      { kind: 'file', path: 'a/empty', mode: 0o644, size: 0 },
      { kind: 'file', path: 'ünï/cödé', mode: 0o4755, size: 1 },
      { kind: 'dir', path: 'ünï', mode: 0o1777, size: 0 },
    ])
    const back = decodeManifest(encodeManifest(m))
    expect(back).toEqual(m)
    expect(back.entries.map((e) => [e.path, e.offset])).toEqual([
      ['a', 0],
      ['a/empty', 0],
      ['a/l', 0],
      ['a/x', 0],
      ['b.bin', 3],
      ['ünï', 0],
      ['ünï/cödé', 10],
    ])
    expect(back.packSize).toBe(11)
    expect(back.files).toBe(4)
    expect(back.entries.find((e) => e.path === 'a/l')?.target).toBe('../b.bin')
  })

  it('the pack content id is a copy, not a view keeping the manifest bytes alive', () => {
    const bytes = Buffer.from(raw({ entries: [file('a', 1)] }))
    const m = decodeManifest(bytes)
    expect(m.packCid).toEqual(packCid)
    expect(m.packCid.buffer).not.toBe(bytes.buffer)
    expect(m.packCid.buffer.byteLength).toBe(32)
  })

  it('an empty collection round-trips', () => {
    const m = buildManifest('nothing', packCid, [])
    expect(decodeManifest(encodeManifest(m))).toEqual(m)
  })

  it('buildManifest sorts by UTF-8 bytes, which decodeManifest demands, not by UTF-16 units', () => {
    // U+FF41 sorts after U+1F600 in UTF-16 (0xFF41 > 0xD83D) but before it in UTF-8 (EF < F0).
    const names = ['😀', 'ａ', 'z', 'A']
    expect([...names].sort()).toEqual(['A', 'z', '😀', 'ａ'])
    const m = buildManifest(
      'x',
      packCid,
      names.map((path) => ({ kind: 'file' as const, path, mode: 0o644, size: 1 })),
    )
    expect(m.entries.map((e) => e.path)).toEqual(['A', 'z', 'ａ', '😀'])
    expect(decodeManifest(encodeManifest(m)).entries.map((e) => e.offset)).toEqual([0, 1, 2, 3])
    // In UTF-16 order the same two names are refused.
    expect(refusal(raw({ entries: [file('😀'), file('ａ')] })).message).toContain('"ａ"')
  })

  it('buildManifest refuses what a receiver would refuse', () => {
    const entry = (path: string): Omit<ManifestEntry, 'offset'> => ({
      kind: 'file',
      path,
      mode: 0o644,
      size: 1,
    })
    expect(() => buildManifest('x', packCid, [entry('a'), entry('a')])).toThrow(ManifestInvalidError)
    expect(() => buildManifest('x', packCid, [entry('a/b')])).toThrow(/"a\/b" is not inside a folder/)
    expect(() => buildManifest('x', packCid, [entry('../b')])).toThrow(ManifestInvalidError)
    expect(() => buildManifest('a/b', packCid, [])).toThrow(/its name "a\/b" is not a file name/)
  })

  it('the largest path, the deepest tree and a 255-byte name are accepted', () => {
    // 16 folders of 240 bytes and a file of 240: 17 * 240 + 16 slashes = 4096 bytes.
    const folders = nested(16, (i) => String.fromCharCode(97 + i).repeat(240))
    const longest = `${folders.at(-1)!.path as string}/${'q'.repeat(240)}`
    expect(enc.encode(longest).length).toBe(MAX_PATH_BYTES)
    expect(decodeManifest(raw({ entries: [...folders, file(longest, 5)] })).packSize).toBe(5)

    const deep = nested(MAX_DEPTH, () => 'd')
    expect(decodeManifest(raw({ entries: deep })).entries).toHaveLength(MAX_DEPTH)

    const wide = 'é'.repeat(127) + 'x' // 255 bytes
    expect(decodeManifest(raw({ name: wide, entries: [file(wide)] })).name).toBe(wide)
  })
})

describe('hostile manifests are refused, naming the offending path', () => {
  it.each([
    ['an absolute path', '/etc/passwd', 'an absolute path'],
    ['a ".." component', 'a/../b', '".."'],
    ['a path that is ".."', '..', '".."'],
    ['a "." component', 'a/./b', '"."'],
    ['an empty component', 'a//b', 'an empty name'],
    ['a trailing slash', 'a/', 'an empty name'],
    ['an empty path', '', 'an empty name'],
    ['a NUL', 'a\0b', 'a NUL character'],
    ['a newline', 'evil\nname', 'a control character'],
    ['an escape sequence', '\x1b[31mred', 'a control character'],
    ['a DEL', 'a\x7f', 'a control character'],
    ['a backslash', 'a\\b', 'a "\\"'],
    ['Windows-style ..', '..\\..\\x', 'a "\\"'],
    ['a 256-byte component of 128 two-byte letters', 'é'.repeat(128), `over ${MAX_NAME_BYTES} bytes`],
    ['the staging folder', STAGING_NAME, 'stages a fetch'],
    ['a file inside the staging folder', `${STAGING_NAME}/pack`, 'stages a fetch'],
  ])('%s', (_, path, why) => {
    const err = refusal(raw({ entries: [file(path, 1)] }))
    expect(err.message).toContain(JSON.stringify(path))
    expect(err.message).toContain(why)
  })

  it('the staging name in any case (one folder where case is folded)', () => {
    const err = refusal(raw({ entries: [dir('.HAUL-Incoming')] }))
    expect(err.message).toContain('".HAUL-Incoming"')
    expect(err.message).toContain('stages a fetch')
  })

  it('the staging name below the top is an ordinary folder', () => {
    const m = decodeManifest(raw({ entries: [dir('a'), dir(`a/${STAGING_NAME}`)] }))
    expect(m.entries.map((e) => e.path)).toEqual(['a', `a/${STAGING_NAME}`])
  })

  it('a path over 4096 bytes', () => {
    const folders = nested(16, (i) => String.fromCharCode(97 + i).repeat(240))
    const path = `${folders.at(-1)!.path as string}/${'q'.repeat(241)}`
    const err = refusal(raw({ entries: [...folders, file(path)] }))
    expect(err.message).toContain(`${JSON.stringify(path.slice(0, 200)).slice(0, -1)}…"`)
    expect(err.message).toContain(`over ${MAX_PATH_BYTES} bytes`)
  })

  it('a tree deeper than 128 folders', () => {
    const folders = nested(MAX_DEPTH, () => 'd')
    const path = `${folders.at(-1)!.path as string}/f`
    const err = refusal(raw({ entries: [...folders, file(path)] }))
    expect(err.message).toContain(path.slice(0, 200))
    expect(err.message).toContain(`deeper than ${MAX_DEPTH}`)
  })

  it('a path listed twice', () => {
    const err = refusal(raw({ entries: [file('a.txt', 1), file('a.txt', 1)] }))
    expect(err.message).toContain('"a.txt" is out of order or listed twice')
  })

  it('a folder listed twice, once as a file', () => {
    const err = refusal(raw({ entries: [dir('a'), file('a')] }))
    expect(err.message).toContain('"a" is out of order or listed twice')
  })

  it('entries out of order', () => {
    const err = refusal(raw({ entries: [file('b'), file('a')] }))
    expect(err.message).toContain('"a" is out of order')
  })

  it('a file whose folder is not listed', () => {
    const err = refusal(raw({ entries: [file('a/b', 1)] }))
    expect(err.message).toContain('"a/b" is not inside a folder listed before it')
  })

  it('a file whose folder is listed as a file', () => {
    const err = refusal(raw({ entries: [file('a', 1), file('a/b', 1)] }))
    expect(err.message).toContain('"a/b" is not inside a folder')
  })

  it('a file whose folder is listed as a link (a write through the link)', () => {
    const err = refusal(raw({ entries: [link('a', 'b'), file('a/x', 1), dir('b')] }))
    expect(err.message).toContain('"a/x" is not inside a folder')
  })

  it.each([
    ['more than', 10n],
    ['less than', 2n],
  ])('file sizes adding up to %s the pack size', (_, packSize) => {
    const err = refusal(raw({ packSize, entries: [file('a', 2), file('b', 3)] }))
    expect(err.message).toContain(`its files add up to 5 bytes, not the pack's ${packSize}`)
  })

  it('offsets are not on the wire: each is the running sum, whatever the entries between', () => {
    // A "wrong offset" cannot be written: decodeManifest derives every offset from the sizes.
    const m = decodeManifest(
      raw({ entries: [file('a', 4), dir('b'), link('c', 'a'), file('d', 6), file('e', 1)] }),
    )
    expect(m.entries.map((e) => e.offset)).toEqual([0, 0, 0, 4, 10])
  })

  it('sizes past 2^53', () => {
    expect(refusal(raw({ packSize: 1n, entries: [file('a', 2n ** 53n)] })).message).toContain('past 2^53')
    expect(refusal(raw({ packSize: 2n ** 53n, entries: [] })).message).toContain('past 2^53')
    const half = 2n ** 52n
    const err = refusal(raw({ packSize: 1n, entries: [file('a', half), file('b', half), file('c', 1n)] }))
    expect(err.message).toContain('past 2^53')
  })

  it.each([0, 4, 255])('an unknown kind (%i)', (kind) => {
    const err = refusal(raw({ entries: [{ kind, path: 'weird' }] }))
    expect(err.message).toContain('"weird"')
    expect(err.message).toContain(`unknown kind ${kind}`)
  })

  it('a mode past 0o7777', () => {
    const err = refusal(raw({ entries: [{ kind: 1, path: 'a.txt', mode: 0o10644 }] }))
    expect(err.message).toContain('"a.txt"')
    expect(err.message).toContain('10644')
  })

  it.each([
    ['a path', { entries: [file(Uint8Array.from([0x63, 0x61, 0x66, 0xe9]))] }, 'caf\ufffd'],
    ['a link target', { entries: [link('l', Uint8Array.from([0xc3]))] }, '"l"'],
    ['the collection name', { name: Uint8Array.from([0x61, 0xff, 0x62]) }, 'a\ufffdb'],
    [
      'an overlong encoding of "/"',
      { entries: [file(Uint8Array.from([0x61, 0xc0, 0xaf, 0x62]))] },
      'a\ufffd',
    ],
  ])('%s that is not UTF-8', (_, m, shown) => {
    const err = refusal(raw(m as RawManifest))
    expect(err.message).toContain('not UTF-8')
    expect(err.message).toContain(shown)
  })

  it('every truncation of a manifest', () => {
    const whole = raw({ entries: [dir('a'), file('a/f', 9), link('a/l', 'f'), file('b', 1)] })
    expect(decodeManifest(whole).files).toBe(2)
    for (let n = 0; n < whole.length; n++) refusal(whole.subarray(0, n))
  })

  it('bytes after the last entry, and a count short of the entries', () => {
    expect(refusal(Uint8Array.from([...raw({ entries: [file('a')] }), 0])).message).toContain(
      'after its last entry',
    )
    expect(refusal(raw({ count: 1, entries: [file('a'), file('b')] })).message).toContain(
      'after its last entry',
    )
    expect(refusal(raw({ count: 3, entries: [file('a'), file('b')] })).message).toContain('truncated')
  })

  it('bad magic, and a format version not known here', () => {
    expect(refusal(raw({ magic: 'haulcoL\0' })).message).toContain('not a haul manifest')
    expect(refusal(raw({ version: 2 })).message).toContain('version 2 is not known')
    expect(refusal(raw({ version: 0 })).message).toContain('version 0 is not known')
  })

  it.each([MAX_ENTRIES + 1, 0xffffffff])('a count of %i, refused from the count alone', (count) => {
    // No entry bytes follow: a decoder that believed the count would report truncation instead.
    const err = refusal(raw({ count }))
    expect(err.message).toContain(`it lists ${count} entries; at most ${MAX_ENTRIES}`)
  })

  it('more bytes than MAX_MANIFEST_BYTES, refused from the length alone', () => {
    // Zero-filled, so the pages are never touched.
    expect(refusal(new Uint8Array(MAX_MANIFEST_BYTES + 1)).message).toContain(
      `over ${MAX_MANIFEST_BYTES} bytes`,
    )
  })

  it.each([
    ['absolute', [link('l', '/etc/passwd')], 'only relative targets'],
    ['empty', [link('l', '')], 'only relative targets'],
    ['NUL', [link('l', 'a\0b')], 'only relative targets'],
    ['one level up', [link('l', '../x')], 'points outside'],
    ['down and further up', [link('l', 'a/../../x')], 'points outside'],
    ['up from a folder', [dir('d'), link('d/l', '../../x')], 'points outside'],
    ['up and down past the top', [dir('d'), link('d/l', '../../d/x')], 'points outside'],
    ['up past the top and back', [link('l', '../coll/x')], 'points outside'],
  ])('a link target leaving the tree: %s', (_, entries, why) => {
    const err = refusal(raw({ entries }))
    const path = entries.at(-1)!.path as string
    expect(err.message).toContain(`the link ${JSON.stringify(path)}`)
    expect(err.message).toContain(why)
  })

  it.each([
    // d/a resolves to the top; d/a/.. is then the top's parent, not d.
    ['listed after the link it passes', [dir('d'), link('d/a', '..'), link('l', 'd/a/..')], 'l'],
    // z resolves to the top itself; z/.. is its parent. The link passed is listed after.
    ['listed before the link it passes', [link('a', 'z/..'), link('z', '.')], 'a'],
    ['down a link and two levels back', [dir('d'), link('d/up', '..'), link('l', 'd/up/x/../..')], 'l'],
    // d/l is the top: d/l/d/l/… stays "inside" by name while each d/l/.. climbs one folder more.
    [
      'down the same link again and again, then up past the top',
      [dir('d'), link('d/l', '..'), link('pw', `${'d/l/'.repeat(10)}${'../'.repeat(18)}etc/passwd`)],
      'pw',
    ],
    ['down a link, staying inside by name', [dir('d'), link('d/l', '..'), link('m', 'd/l/d/l/..')], 'm'],
    // Inside, as it happens, yet past a link all the same: not followed.
    [
      'on past a link into a name',
      [dir('d'), link('d/up', '..'), link('d/via', 'up/x'), file('x', 1)],
      'd/via',
    ],
  ])('a link target leaving the tree through another link: %s', (_, entries, path) => {
    const err = refusal(raw({ entries }))
    expect(err.message).toContain(`the link ${JSON.stringify(path)}`)
    expect(err.message).toContain('points through the link')
  })

  it('link targets that stay inside are kept as written', () => {
    const entries = [
      dir('d'),
      dir('d/e'),
      link('d/e/l', '../../x'),
      link('d/l', '../x'),
      link('d/to-up', 'up'),
      link('d/up', '..'),
      link('l', './d/./e/../e'),
      link('m', 'd//e/'),
      file('x', 1),
    ]
    const m = decodeManifest(raw({ entries }))
    expect(m.entries.map((e) => e.target)).toEqual(entries.map((e) => e.target))
  })

  it.each([
    ['empty', ''],
    ['"."', '.'],
    ['".."', '..'],
    ['a path', 'a/b'],
    ['with a NUL', 'a\0b'],
    ['with a newline', 'a\nb'],
    ['with a backslash', 'a\\b'],
  ])('a collection name that is not a file name: %s', (_, name) => {
    expect(refusal(raw({ name })).message).toContain(`its name ${JSON.stringify(name)} is not a file name`)
  })
})

describe('case-folded collisions', () => {
  const manifest = (paths: Array<[string, 'file' | 'dir']>): Manifest =>
    buildManifest(
      'x',
      packCid,
      paths.map(([path, kind]) => ({ kind, path, mode: 0o644, size: kind === 'file' ? 1 : 0 })),
    )

  it('names differing only in case or Unicode normalization are paired, first listed first', () => {
    const m = manifest([
      ['A.txt', 'file'],
      ['a.txt', 'file'],
      ['Dir', 'dir'],
      ['dir', 'file'],
      ['caf\u00e9', 'file'], // é as one code point (NFC)
      ['cafe\u0301', 'file'], // e + combining acute (NFD)
      ['other', 'file'],
    ])
    expect(foldedCollisions(m)).toEqual([
      ['A.txt', 'a.txt'],
      ['cafe\u0301', 'caf\u00e9'],
      ['Dir', 'dir'],
    ])
  })

  it('three names of one folded key make two pairs against the first', () => {
    const m = manifest([
      ['README', 'file'],
      ['ReadMe', 'file'],
      ['readme', 'file'],
    ])
    expect(foldedCollisions(m)).toEqual([
      ['README', 'ReadMe'],
      ['README', 'readme'],
    ])
  })

  it('distinct names make none', () => {
    expect(
      foldedCollisions(
        manifest([
          ['a', 'dir'],
          ['a/a', 'file'],
          ['b', 'file'],
        ]),
      ),
    ).toEqual([])
  })
})

describe('path rules (names.ts)', () => {
  it('componentProblem', () => {
    expect(componentProblem('ok name.txt')).toBeUndefined()
    expect(componentProblem('…ünïcødé 😀')).toBeUndefined()
    expect(componentProblem('x'.repeat(255))).toBeUndefined()
    expect(componentProblem('x'.repeat(256))).toBe('a name over 255 bytes')
    expect(componentProblem('😀'.repeat(64))).toBe('a name over 255 bytes') // 256 bytes, 128 UTF-16 units
    expect(componentProblem('')).toBe('an empty name')
    expect(componentProblem('.')).toBe('"."')
    expect(componentProblem('..')).toBe('".."')
    expect(componentProblem('...')).toBeUndefined()
    expect(componentProblem('a/b')).toBe('a "/"')
    expect(componentProblem('a\\b')).toBe('a "\\"')
    expect(componentProblem('a\0')).toBe('a NUL character')
    expect(componentProblem('\t')).toBe('a control character')
    expect(componentProblem('\x7f')).toBe('a control character')
  })

  it('checkedPath gives the components, or refuses naming the path', () => {
    expect(checkedPath('a/b/c.txt')).toEqual(['a', 'b', 'c.txt'])
    expect(checkedPath('.hidden')).toEqual(['.hidden'])
    expect(() => checkedPath('/a')).toThrow(/refused "\/a": an absolute path/)
    expect(() => checkedPath('a/../../b')).toThrow(/refused "a\/..\/..\/b": it contains "\.\."/)
    expect(() => checkedPath(`${STAGING_NAME}/x`)).toThrow(ManifestInvalidError)
  })

  it('safeName takes a sender-given name only when it is one safe component', () => {
    expect(safeName('report.pdf')).toBe('report.pdf')
    expect(safeName(undefined)).toBeUndefined()
    for (const bad of ['', '.', '..', '../x', '/etc/passwd', 'a\\b', 'a\nb', STAGING_NAME, '.Haul-Incoming'])
      expect(safeName(bad)).toBeUndefined()
  })

  it('foldedKey folds case and Unicode normalization', () => {
    expect(foldedKey('ÀB/Cé')).toBe(foldedKey('àb/ce\u0301'))
    expect(foldedKey('a')).not.toBe(foldedKey('b'))
  })
})

describe('tickets naming a collection (version 3)', () => {
  const cid = Uint8Array.from({ length: 32 }, (_, i) => i * 3)
  const a = { peerId: '12D3KooWA', addrs: ['/ip4/127.0.0.1/tcp/1'] }
  const b = { peerId: '12D3KooWB', addrs: ['/ip4/127.0.0.1/tcp/2'] }

  it('round-trip a name and the collection kind, with one provider or several', () => {
    for (const providers of [[a], [a, b]]) {
      const t = encodeSwarmTicket({ cid, providers, name: 'Fotos 2024 ünï', kind: 'collection' })
      expect(decodeSwarmTicket(t)).toEqual({ cid, providers, name: 'Fotos 2024 ünï', kind: 'collection' })
    }
    const named = encodeSwarmTicket({ cid, providers: [a], name: 'report.pdf' })
    expect(decodeSwarmTicket(named)).toEqual({ cid, providers: [a], name: 'report.pdf' })
    const unnamed = encodeSwarmTicket({ cid, providers: [a], kind: 'collection' })
    expect(decodeSwarmTicket(unnamed)).toEqual({ cid, providers: [a], kind: 'collection' })
  })

  it('version 1 and 2 tickets still decode, as files without a name', () => {
    const v1 = encodeTicket({ cid, ...a })
    expect(base32Decode(v1.slice(5))[0]).toBe(1)
    expect(decodeSwarmTicket(v1)).toEqual({ cid, providers: [a] })
    const v2 = ticketText(legacyV2(cid, [a, b]))
    expect(base32Decode(v2.slice(5))[0]).toBe(2)
    expect(decodeSwarmTicket(v2)).toEqual({ cid, providers: [a, b] })
  })

  it.each([4, 0x80, 0xff])('refuses flags it does not know (%i)', (flags) => {
    const bytes = v3Body(encodeSwarmTicket({ cid, providers: [a], name: 'x', kind: 'collection' }))
    expect(bytes[0]).toBe(3)
    bytes[1] = flags
    expect(() => decodeSwarmTicket(seal(bytes))).toThrow(/flags this version does not know/)
  })

  it('refuses a name that is not UTF-8, or runs past the end', () => {
    const bytes = v3Body(encodeSwarmTicket({ cid, providers: [a], name: 'xy', kind: 'collection' }))
    const bad = Uint8Array.from(bytes)
    bad[3] = 0xff
    expect(() => decodeSwarmTicket(seal(bad))).toThrow(/invalid text/)
    const long = Uint8Array.from(bytes)
    long[2] = 255
    expect(() => decodeSwarmTicket(seal(long))).toThrow(TicketInvalidError)
  })

  it('a name over 255 bytes is refused when encoding; 255 bytes are kept', () => {
    expect(() => encodeSwarmTicket({ cid, providers: [a], name: 'é'.repeat(128) })).toThrow(
      /at most 255 bytes/,
    )
    const name = 'x'.repeat(255)
    expect(decodeSwarmTicket(encodeSwarmTicket({ cid, providers: [a], name })).name).toBe(name)
  })

  it('joinTickets keeps the name and kind', () => {
    const t1 = encodeSwarmTicket({ cid, providers: [a], name: 'photos', kind: 'collection' })
    const t2 = encodeSwarmTicket({ cid, providers: [b], name: 'photos', kind: 'collection' })
    expect(decodeSwarmTicket(joinTickets([t1, t2]))).toEqual({
      cid,
      providers: [a, b],
      name: 'photos',
      kind: 'collection',
    })
  })

  it('joinTickets refuses a folder ticket with a file ticket, in either order', () => {
    const folder = encodeSwarmTicket({ cid, providers: [a], name: 'photos', kind: 'collection' })
    const named = encodeSwarmTicket({ cid, providers: [b], name: 'photos' })
    const plain = encodeTicket({ cid, ...b })
    for (const pair of [
      [folder, named],
      [named, folder],
      [folder, plain],
      [plain, folder],
    ])
      expect(() => joinTickets(pair)).toThrow(/mix a folder and a file/)
  })
})
