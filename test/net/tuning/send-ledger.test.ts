import { describe, expect, it } from 'vitest'
import {
  type ConnectionSendLedger,
  FLIGHT_PROGRESS_BYTES,
  Flight,
} from '../../../src/net/tuning/send-ledger.ts'

const STEP = FLIGHT_PROGRESS_BYTES

/** A connection's counts as a slow link moves them: what reached the kernel, what the peer acknowledged. */
class Counts {
  delivered = 0
  acked: number | undefined = 0
  get ledger(): ConnectionSendLedger {
    return this as unknown as ConnectionSendLedger
  }
}

describe('Flight: the bytes a waiting stream has on their way', () => {
  it('moves with each FLIGHT_PROGRESS_BYTES the kernel takes, and once it took the last', () => {
    const c = new Counts()
    const flight = new Flight(c.ledger, 3 * STEP + 10)
    expect(flight.moved()).toBe(false)
    c.delivered = STEP - 1
    expect(flight.moved()).toBe(false)
    c.delivered = STEP
    expect(flight.moved()).toBe(true)
    expect(flight.moved()).toBe(false)
    c.delivered = 3 * STEP + 10
    expect(flight.moved()).toBe(true)
    // All in the kernel: only the peer's acknowledgements move it now, and only when asked.
    expect(flight.moved()).toBe(false)
    expect(flight.landed).toBe(false)
  })

  it('asked deep, moves with what the peer acknowledges, in the kernel or not yet (the kernel takes bursts)', () => {
    const c = new Counts()
    c.delivered = 200_000
    c.acked = 10_000
    const flight = new Flight(c.ledger, 400_000)
    // The first deep look takes the mark.
    expect(flight.moved(true)).toBe(false)
    c.acked = 10_000 + STEP - 1
    expect(flight.moved(true)).toBe(false)
    expect(flight.moved(false)).toBe(false)
    c.acked = 10_000 + STEP
    expect(flight.moved(false)).toBe(false)
    expect(flight.moved(true)).toBe(true)
    c.delivered = 400_000
    expect(flight.moved(true)).toBe(true)
    c.acked = 400_000
    expect(flight.moved(true)).toBe(true)
    expect(flight.landed).toBe(true)
    c.acked = 900_000
    expect(flight.moved(true)).toBe(false)
  })

  it('a peer that acknowledges nothing more does not move it, however long', () => {
    const c = new Counts()
    c.delivered = 100_000
    c.acked = 50_000
    const flight = new Flight(c.ledger, 100_000)
    expect(flight.moved(true)).toBe(true)
    for (let i = 0; i < 100; i++) expect(flight.moved(true)).toBe(false)
    expect(flight.landed).toBe(false)
  })

  it('where acknowledgements cannot be read, it is over once the kernel took everything', () => {
    const c = new Counts()
    c.acked = undefined
    const flight = new Flight(c.ledger, 2 * STEP)
    c.delivered = STEP
    expect(flight.moved(true)).toBe(true)
    expect(flight.landed).toBe(false)
    c.delivered = 2 * STEP
    expect(flight.moved(true)).toBe(true)
    expect(flight.moved(true)).toBe(false)
    expect(flight.landed).toBe(true)
  })
})
