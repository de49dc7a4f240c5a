import { afterEach, describe, expect, it, vi } from 'vitest'
import { Output } from '../../src/cli/output.ts'
import { ServeReport } from '../../src/cli/serve-report.ts'

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
    const end = (session: number, peerId: string): void =>
      report.onEvent({
        type: 'session-ended',
        session,
        peerId,
        bytes: 0,
        chunks: 0,
        wireBytes: 0,
        reason: 'closed',
        busy: false,
      })
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
})
