import { describe, expect, it } from 'vitest'
import { ContentRegistry, MAX_WITHDRAWN, type PublishedContent } from '../../src/serve/registry.ts'

const cidOf = (n: number): Uint8Array => {
  const cid = new Uint8Array(32)
  new DataView(cid.buffer).setUint32(0, n)
  return cid
}

/** Content with just what the registry looks at: its id and secrets (closing is a no-op). */
const content = (n: number, secrets?: Uint8Array[]): PublishedContent =>
  ({
    cid: cidOf(n),
    ...(secrets === undefined ? {} : { secrets }),
    reader: { close: async () => {} },
    source: { close: async () => {} },
  }) as unknown as PublishedContent

describe('ContentRegistry: content withdrawn because its source changed', () => {
  it('is told as changed to a request that could have had it, as unknown to one without its secret', () => {
    const r = new ContentRegistry()
    const secret = new Uint8Array(16).fill(7)
    r.add(content(1, [secret]))
    expect(r.withdrawChanged(cidOf(1), 'a.bin changed')).toBeDefined()
    expect(r.granted(cidOf(1), secret)).toBeUndefined()
    expect(r.changedFor(cidOf(1), secret)).toBe('a.bin changed')
    expect(r.changedFor(cidOf(1), new Uint8Array(16))).toBeUndefined()
    expect(r.changedFor(cidOf(1), undefined)).toBeUndefined()
    // Unpublished by the application, not withdrawn: unknown.
    r.add(content(2))
    r.unpublish(cidOf(2))
    expect(r.changedFor(cidOf(2), undefined)).toBeUndefined()
  })

  it('is forgotten once published again, and beyond the last MAX_WITHDRAWN', () => {
    const r = new ContentRegistry()
    r.add(content(1))
    r.withdrawChanged(cidOf(1), 'changed')
    r.add(content(1))
    expect(r.changedFor(cidOf(1), undefined)).toBeUndefined()
    for (let i = 10; i < 10 + MAX_WITHDRAWN + 1; i++) {
      r.add(content(i))
      r.withdrawChanged(cidOf(i), `changed ${i}`)
    }
    expect(r.changedFor(cidOf(10), undefined)).toBeUndefined()
    expect(r.changedFor(cidOf(11), undefined)).toBe('changed 11')
    expect(r.changedFor(cidOf(10 + MAX_WITHDRAWN), undefined)).toBe(`changed ${10 + MAX_WITHDRAWN}`)
  })
  it('remembered from an earlier run (rememberChanged): told with the same secret rule, unless it is served again', () => {
    const r = new ContentRegistry()
    const secret = new Uint8Array(16).fill(5)
    r.rememberChanged(cidOf(3), [secret], 'c.bin changed')
    expect(r.changedFor(cidOf(3), secret)).toBe('c.bin changed')
    expect(r.changedFor(cidOf(3), undefined)).toBeUndefined()
    // Served (by another path with the same bytes): serving it finds a change itself.
    r.add(content(4))
    r.rememberChanged(cidOf(4), undefined, 'd.bin changed')
    expect(r.granted(cidOf(4), undefined)).toBeDefined()
    r.unpublish(cidOf(4))
    expect(r.changedFor(cidOf(4), undefined)).toBeUndefined()
  })
})
