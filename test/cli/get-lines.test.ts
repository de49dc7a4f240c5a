import { describe, expect, it } from 'vitest'
import { viaText } from '../../src/cli/commands/get-lines.ts'
import type { SwarmStats, TransferRoute } from '../../src/transfer/transfer-types.ts'

/** A fetch's stats with one peer per route given (undefined: no stream to it opened). */
function stats(...routes: (TransferRoute | undefined)[]): SwarmStats {
  return {
    duplicateBytes: 0,
    corruptChunks: 0,
    peers: routes.map((route, i) => ({
      peerId: `peer-${i}`,
      verifiedBytes: 1,
      failures: 0,
      stalls: 0,
      ...(route === undefined ? {} : { route }),
    })),
  }
}

describe("haul get's summary says how its peers were reached", () => {
  it('nothing when directly, a relay when it carried every peer reached', () => {
    expect(viaText(stats('direct'))).toBe('')
    expect(viaText(stats('direct', 'direct', undefined))).toBe('')
    expect(viaText(stats('relayed'))).toBe(', through a relay')
    expect(viaText(stats('relayed', undefined))).toBe(', through a relay')
    expect(viaText(stats('upgraded'))).toBe(', relayed then direct')
  })

  it('how many of several senders came through a relay when the others were reached directly', () => {
    expect(viaText(stats('direct', 'relayed'))).toBe(', 1 of 2 senders through a relay')
    expect(viaText(stats('relayed', 'direct', 'relayed', undefined))).toBe(', 2 of 3 senders through a relay')
  })
})
