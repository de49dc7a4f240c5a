import { afterEach, describe, expect, it, vi } from 'vitest'
import { Output } from '../../src/cli/output.ts'
import { ServeReport } from '../../src/cli/serve-report.ts'
import type { ServeEvent } from '../../src/serve/serve-events.ts'

/** What `run` printed as human lines on stdout. */
function printed(run: () => void): string[] {
  const lines: string[] = []
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean))
    return true
  })
  try {
    run()
  } finally {
    spy.mockRestore()
  }
  return lines
}

/** A session its peer closed with nothing served. */
function closedEmpty(session: number, peerId: string): ServeEvent {
  return {
    type: 'session-ended',
    session,
    peerId,
    bytes: 0,
    chunks: 0,
    wireBytes: 0,
    reason: 'closed',
    busy: false,
  }
}

describe("haul send's lines about what it serves", () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it("a peer running hundreds of transfers at once gets ten lines, then one a second, and the count of those not shown; another peer's lines are not held back", () => {
    vi.useFakeTimers()
    const report = new ServeReport(new Output(false))
    const hostile = '12D3KooWHostilePeerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
    const honest = '12D3KooWHonestPeerBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
    const transfer = (session: number, peerId: string): void => {
      report.onEvent({ type: 'session-opened', session, peerId, remoteAddr: '/ip4/127.0.0.1/tcp/1' })
      report.onEvent({
        type: 'content-requested',
        session,
        peerId,
        cid: 'bcid',
        path: '/srv/big.iso',
        totalBytes: 1024,
        totalChunks: 1,
        partial: false,
      })
    }
    const end = (session: number, peerId: string): void => report.onEvent(closedEmpty(session, peerId))
    const during = printed(() => {
      for (let s = 1; s <= 300; s++) transfer(s, hostile)
      transfer(1000, honest)
    })
    expect(during.filter((l) => l.includes('fetching big.iso') && l.startsWith('12D3…AAAAAAA')).length).toBe(
      10,
    )
    expect(during.some((l) => l.startsWith('12D3…BBBBBBB fetching big.iso'))).toBe(true)
    // A second on, one more line, saying first how many were not shown.
    vi.advanceTimersByTime(1_000)
    const later = printed(() => end(1, hostile))
    expect(later[0]).toBe("(290 more lines about 12D3…AAAAAAA's transfers not shown: it ran many at once)")
    expect(later[1]).toMatch(/^12D3…AAAAAAA stopped fetching big\.iso/)
    // Its last session closed: the rest counted in one line.
    const closing = printed(() => {
      for (let s = 2; s <= 300; s++) end(s, hostile)
    })
    expect(closing).toEqual([
      "(299 more lines about 12D3…AAAAAAA's transfers not shown: it ran many at once)",
    ])
  })

  it('a peer that ends a session and opens the next over the same connection is said to connect once; a stop with nothing asked says so', () => {
    const report = new ServeReport(new Output(false))
    const peerId = '12D3KooWLookupThenFetchCCCCCCCCCCCCCCCCCCCCCCCCCCCC'
    const session = (s: number, remoteAddr: string): void => {
      report.onEvent({ type: 'session-opened', session: s, peerId, remoteAddr })
      report.onEvent(closedEmpty(s, peerId))
    }
    const lines = printed(() => {
      session(1, '/ip4/10.0.0.7/tcp/43734')
      session(2, '/ip4/10.0.0.7/tcp/43734')
      session(3, '/ip4/10.0.0.7/tcp/50000')
      report.summary()
    })
    expect(lines.filter((l) => l.includes('connected from'))).toEqual([
      'peer 12D3…CCCCCCC connected from /ip4/10.0.0.7/tcp/43734',
      'peer 12D3…CCCCCCC connected from /ip4/10.0.0.7/tcp/50000',
    ])
    expect(lines.at(-1)).toBe('stopped: nothing was asked for (1 peer connected)')
  })
})
