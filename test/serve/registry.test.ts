import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  ContentRegistry,
  MAX_LAST_RUN,
  MAX_WITHDRAWN,
  type PublishedContent,
} from '../../src/serve/registry.ts'

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

describe('ContentRegistry: what an earlier run published (lastRun)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is told CONTENT_PREPARING under the secret rule until its time is up, published again, withdrawn as changed or unpublished', async () => {
    vi.useFakeTimers({ toFake: ['performance'] })
    const r = new ContentRegistry()
    const secret = new Uint8Array(16).fill(9)
    let read!: () => void
    r.beginLastRun(60_000, new Promise<void>((resolve) => (read = resolve)))
    const reading = r.lastRunRead()
    expect(reading).toBeDefined()
    for (const n of [1, 2, 3, 4]) r.lastRun(cidOf(n), [secret])
    r.lastRun(cidOf(5), undefined)
    read()
    await reading
    expect(r.lastRunRead()).toBeUndefined()
    expect(r.preparingFor(cidOf(1), secret)).toMatch(/restarted/)
    expect(r.preparingFor(cidOf(5), undefined)).toMatch(/restarted/)
    expect(r.preparingFor(cidOf(1), undefined)).toBeUndefined()
    expect(r.preparingFor(cidOf(1), new Uint8Array(16))).toBeUndefined()
    // Published again: served, and no longer told of once it is not.
    r.add(content(2, [secret]))
    r.unpublish(cidOf(2))
    expect(r.preparingFor(cidOf(2), secret)).toBeUndefined()
    // Its path published other content: CONTENT_CHANGED says more, and wins.
    r.rememberChanged(cidOf(3), [secret], 'c.bin changed')
    expect(r.preparingFor(cidOf(3), secret)).toBeUndefined()
    expect(r.changedFor(cidOf(3), secret)).toBe('c.bin changed')
    r.lastRun(cidOf(3), [secret])
    expect(r.preparingFor(cidOf(3), secret)).toBeUndefined()
    // Revoked by the application.
    r.unpublish(cidOf(4))
    expect(r.preparingFor(cidOf(4), secret)).toBeUndefined()
    vi.advanceTimersByTime(60_001)
    expect(r.preparingFor(cidOf(1), secret)).toBeUndefined()
    expect(r.preparingFor(cidOf(5), undefined)).toBeUndefined()
  })

  it('keeps at most MAX_LAST_RUN', () => {
    const r = new ContentRegistry()
    r.beginLastRun(60_000, Promise.resolve())
    for (let i = 0; i <= MAX_LAST_RUN; i++) r.lastRun(cidOf(i), undefined)
    expect(r.preparingFor(cidOf(MAX_LAST_RUN - 1), undefined)).toBeDefined()
    expect(r.preparingFor(cidOf(MAX_LAST_RUN), undefined)).toBeUndefined()
  })
})
