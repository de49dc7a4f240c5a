/**
 * How the serving side divides the memory budget between peers (src/serve/serve-shares.ts):
 * a peer that holds its share and gives nothing back cannot take what a newcomer needs.
 */
import { describe, expect, it } from 'vitest'
import { AbortedError } from '../../src/errors.ts'
import type { Lease } from '../../src/resources/memory-budget.ts'
import { MemoryBudget } from '../../src/resources/memory-budget.ts'
import { ServeShares } from '../../src/serve/serve-shares.ts'

const MiB = 1024 * 1024
const settled = async <T>(p: Promise<T>): Promise<boolean> => {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  await new Promise((r) => setTimeout(r, 10))
  return done
}

describe('serving shares of a 16 MiB budget', () => {
  it('one peer alone gets three quarters; a newcomer starts at once in the rest', async () => {
    const budget = new MemoryBudget({ limit: 16 * MiB })
    const shares = new ServeShares(budget)
    const hog = shares.join('hog')
    const held: Lease[] = []
    for (let i = 0; i < 12; i++) held.push(await hog.acquire(MiB))
    const more = hog.acquire(MiB)
    expect(await settled(more)).toBe(false)
    expect(hog.used).toBe(12 * MiB)
    expect(hog.waiting).toBe(1)
    expect(budget.used).toBe(12 * MiB)
    const newcomer = shares.join('newcomer')
    const got: Lease[] = []
    for (let i = 0; i < 4; i++) got.push(await newcomer.acquire(MiB))
    expect(budget.used).toBe(16 * MiB)
    expect(shares.stats).toMatchObject({ peers: 2, served: 2 })
    // The hog is above its new share (6 MiB): its queued request waits until it is under.
    for (const l of held.splice(0, 6)) l.release()
    expect(await settled(more)).toBe(false)
    held.shift()!.release()
    expect(await settled(more)).toBe(true)
    for (const l of [...held, ...got]) l.release()
    ;(await more).release()
    expect(budget.used).toBe(0)
  })

  it('a peer holding nothing may always take one chunk, whatever its share', async () => {
    const budget = new MemoryBudget({ limit: 16 * MiB })
    const shares = new ServeShares(budget)
    const peers = Array.from({ length: 20 }, (_, i) => shares.join(`p${i}`))
    const leases: Lease[] = []
    // 20 peers: a share of 0.6 MiB each, less than a chunk; each still gets one 1 MiB lease
    // while the budget has room.
    for (const p of peers.slice(0, 16)) leases.push(await p.acquire(MiB))
    expect(budget.used).toBe(16 * MiB)
    const second = peers[0]!.acquire(MiB)
    expect(await settled(second)).toBe(false)
    for (const l of leases) l.release()
    ;(await second).release()
  })

  it('a peer that stops being served grows the others back; aborted waiters leave nothing counted', async () => {
    const budget = new MemoryBudget({ limit: 16 * MiB })
    const shares = new ServeShares(budget)
    const a = shares.join('a')
    const b = shares.join('b')
    const bl = await b.acquire(MiB)
    const al: Lease[] = []
    for (let i = 0; i < 6; i++) al.push(await a.acquire(MiB)) // share: 12 / 2 = 6 MiB
    const ac = new AbortController()
    const waiting = a.acquire(MiB, { signal: ac.signal })
    const grown = a.acquire(MiB)
    expect(await settled(waiting)).toBe(false)
    ac.abort()
    await expect(waiting).rejects.toBeInstanceOf(AbortedError)
    bl.release() // b is no longer served: a's share is 12 MiB again
    expect(await settled(grown)).toBe(true)
    for (const l of al) l.release()
    ;(await grown).release()
    b.leave()
    a.leave()
    expect(shares.stats).toEqual({ peers: 0, served: 0, leased: 0, partialBytes: 0 })
  })
})
