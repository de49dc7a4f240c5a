import { describe, expect, it } from 'vitest'
import type { ContentRouting } from '../../src/routing/content-routing.ts'
import { ProviderSearch } from '../../src/routing/provider-search.ts'
import type { Provider } from '../../src/ticket/multi-ticket.ts'

const cid = new Uint8Array(32).fill(3)
const p = (n: number): Provider => ({ peerId: `peer-${n}`, addrs: [`/ip4/10.0.0.${n}/tcp/4001`] })

/** Lookups that answer from a list the test changes between them (the DHT's records over time). */
function routing(records: () => Provider[]): ContentRouting {
  return {
    async *findProviders(_cid: Uint8Array, signal: AbortSignal) {
      for (const r of records()) {
        if (signal.aborted) return
        yield r
      }
    },
  } as unknown as ContentRouting
}

describe('ProviderSearch', () => {
  it('starts with the first provider, hands the rest of that lookup to the running fetch, each provider once, at most maxProviders', async () => {
    let records = [p(1), p(2), p(3)]
    const search = new ProviderSearch(
      routing(() => records),
      cid,
      { maxProviders: 5, lookupMs: 5_000, refreshMs: 10 },
    )
    expect(await search.first(new AbortController().signal)).toEqual([p(1)])
    const added: string[] = []
    const stop = new AbortController()
    const looking = search.keepLooking((x) => {
      added.push(x.peerId)
      // A later lookup finds the same ones again and new ones, more than the bound allows.
      records = [p(1), p(2), p(4), p(5), p(6), p(7)]
    }, stop.signal)
    await looking
    expect(added).toEqual(['peer-2', 'peer-3', 'peer-4', 'peer-5'])
    expect(search.stillLooking()).toBe(false)
  })

  it('fails with NO_PROVIDER after lookupMs when no lookup finds one, and says it still looks only while one could come', async () => {
    const search = new ProviderSearch(
      routing(() => []),
      cid,
      { maxProviders: 5, lookupMs: 300, refreshMs: 10 },
    )
    expect(search.stillLooking()).toBe(true)
    await expect(search.first(new AbortController().signal)).rejects.toMatchObject({ code: 'NO_PROVIDER' })
    expect(search.stillLooking()).toBe(false)
  })

  it('a cancelled fetch stops looking with ABORTED', async () => {
    const search = new ProviderSearch(
      routing(() => []),
      cid,
      { maxProviders: 5, lookupMs: 10_000, refreshMs: 10 },
    )
    const ctrl = new AbortController()
    const first = search.first(ctrl.signal)
    ctrl.abort()
    await expect(first).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('asks its neighbours directly: one that serves the content is the first provider while the DHT finds none; one that does not is never handed out', async () => {
    const asked: string[] = []
    const neighbours = {
      peers: [p(8), p(9)],
      ask: async (x: Provider) => {
        asked.push(x.peerId)
        return x.peerId === 'peer-9'
      },
    }
    const search = new ProviderSearch(
      routing(() => []),
      cid,
      { maxProviders: 5, lookupMs: 5_000, refreshMs: 10 },
      neighbours,
    )
    expect(await search.first(new AbortController().signal)).toEqual([p(9)])
    expect(asked.sort()).toEqual(['peer-8', 'peer-9'])

    const none = new ProviderSearch(
      routing(() => []),
      cid,
      { maxProviders: 5, lookupMs: 300, refreshMs: 10 },
      { peers: [p(8)], ask: neighbours.ask },
    )
    await expect(none.first(new AbortController().signal)).rejects.toMatchObject({ code: 'NO_PROVIDER' })
  })

  it('asks a neighbour again while no provider is known: a seeder too busy to answer at first is found', async () => {
    let asks = 0
    const search = new ProviderSearch(
      routing(() => []),
      cid,
      { maxProviders: 5, lookupMs: 10_000, refreshMs: 10 },
      // Fails twice (a timeout, a refused stream), then answers.
      { peers: [p(7)], ask: async () => ++asks > 2 },
    )
    expect(await search.first(new AbortController().signal)).toEqual([p(7)])
    expect(asks).toBe(3)
    // Found: no more asking.
    await new Promise((r) => setTimeout(r, 1_200))
    expect(asks).toBe(3)
  })

  it('a neighbour that serves the content and a DHT that finds it too: handed out once', async () => {
    const search = new ProviderSearch(
      routing(() => [p(9), p(1)]),
      cid,
      { maxProviders: 5, lookupMs: 5_000, refreshMs: 10 },
      { peers: [p(9)], ask: async () => true },
    )
    const first = await search.first(new AbortController().signal)
    const added: string[] = []
    const stop = new AbortController()
    const looking = search.keepLooking((x) => added.push(x.peerId), stop.signal)
    await new Promise((r) => setTimeout(r, 100))
    stop.abort()
    await looking
    expect([...first.map((x) => x.peerId), ...added].sort()).toEqual(['peer-1', 'peer-9'])
  })
})
