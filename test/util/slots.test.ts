import { describe, expect, it } from 'vitest'
import { AbortedError, TooManyRequestsError } from '../../src/errors.ts'
import { Slots } from '../../src/util/slots.ts'

describe('Slots', () => {
  it('grants up to the limit, queues FIFO, and hands a released slot to the oldest waiter', async () => {
    const s = new Slots(2, 5)
    await s.acquire()
    await s.acquire()
    const order: number[] = []
    const w1 = s.acquire().then(() => order.push(1))
    const w2 = s.acquire().then(() => order.push(2))
    expect(s.waiting).toBe(2)
    s.release()
    await w1
    expect(order).toEqual([1])
    expect(s.active).toBe(2)
    s.release()
    await w2
    expect(order).toEqual([1, 2])
    s.release()
    s.release()
    expect(s.idle).toBe(true)
  })

  it('setLimit: raising it admits waiters at once; lowering it admits nobody until enough holders leave', async () => {
    const s = new Slots(2)
    await s.acquire()
    await s.acquire()
    let admitted = 0
    const waiters = [s.acquire(), s.acquire(), s.acquire()].map((p) => p.then(() => admitted++))
    s.setLimit(3)
    await Promise.resolve()
    await Promise.resolve()
    expect(s.active).toBe(3)
    s.setLimit(1)
    s.release()
    s.release()
    await Promise.resolve()
    expect(admitted).toBe(1)
    expect(s.active).toBe(1)
    s.release()
    await Promise.all(waiters.slice(0, 2))
    expect(admitted).toBe(2)
    expect(s.active).toBe(1)
    s.release()
    await Promise.all(waiters)
    expect(s.active).toBe(1)
  })

  it('fails at once past the waiting bound', async () => {
    const s = new Slots(1, 1)
    await s.acquire()
    const waiting = s.acquire()
    await expect(s.acquire({ what: 'streams to peer X' })).rejects.toBeInstanceOf(TooManyRequestsError)
    s.release()
    await waiting
  })

  it('an aborted waiter leaves the line and does not take a slot', async () => {
    const s = new Slots(1, 4)
    await s.acquire()
    const ac = new AbortController()
    const p = s.acquire({ signal: ac.signal })
    ac.abort()
    await expect(p).rejects.toBeInstanceOf(AbortedError)
    expect(s.waiting).toBe(0)
    s.release()
    expect(s.idle).toBe(true)
  })

  it('rejectWaiters fails everyone waiting', async () => {
    const s = new Slots(1, 4)
    await s.acquire()
    const p = s.acquire()
    s.rejectWaiters(new AbortedError('stopping'))
    await expect(p).rejects.toThrow('stopping')
  })

  it('hands slots over in FIFO order and never exceeds the limit', async () => {
    const slots = new Slots(2)
    const order: number[] = []
    await slots.acquire()
    await slots.acquire()
    const waits = [1, 2, 3].map((i) => slots.acquire().then(() => order.push(i)))
    expect(slots.active).toBe(2)
    expect(slots.waiting).toBe(3)
    slots.release()
    slots.release()
    await Promise.resolve()
    expect(order).toEqual([1, 2])
    expect(slots.active).toBe(2)
    slots.release()
    await Promise.all(waits)
    expect(order).toEqual([1, 2, 3])
    slots.release()
    slots.release()
    expect(slots.active).toBe(0)
  })

  it('an aborted waiter ahead of another hands its turn on; an already-aborted signal fails at once', async () => {
    const slots = new Slots(1)
    await slots.acquire()
    const ac = new AbortController()
    const waiting = slots.acquire({ signal: ac.signal })
    const next = slots.acquire()
    ac.abort('stop')
    await expect(waiting).rejects.toBeInstanceOf(AbortedError)
    expect(slots.waiting).toBe(1)
    slots.release()
    await next
    expect(slots.active).toBe(1)
    await expect(slots.acquire({ signal: ac.signal })).rejects.toBeInstanceOf(AbortedError)
  })

  it('rejectWaiters empties the queue, even with a limit of 0', async () => {
    const slots = new Slots(0)
    const w = slots.acquire()
    slots.rejectWaiters(new AbortedError('closing'))
    await expect(w).rejects.toThrow('closing')
    expect(slots.waiting).toBe(0)
  })
})
