import { describe, expect, it } from 'vitest'
import { AbortedError } from '../../src/errors.ts'
import { TokenBucket } from '../../src/resources/rate-limit.ts'
import { UploadSpread } from '../../src/serve/upload-spread.ts'

/** A limiter that grants one take at a time when the test says so, and records refunds. */
class HandLimiter {
  readonly pending: Array<{ bytes: number; grant: () => void }> = []
  refunded = 0
  take(bytes: number): Promise<void> {
    return new Promise((resolve) => this.pending.push({ bytes, grant: resolve }))
  }
  refund(bytes: number): void {
    this.refunded += bytes
  }
  /** Grants the oldest take, `times` over, letting the queue move on after each. */
  async grant(times = 1): Promise<void> {
    for (let i = 0; i < times; i++) {
      const p = this.pending.shift()
      if (p === undefined) throw new Error('nothing waits on the limiter')
      p.grant()
      await new Promise((r) => setImmediate(r))
    }
  }
}

function setup(spreadMs: number, maxTracked = 100) {
  let t = 0
  const limiter = new HandLimiter()
  const spread = new UploadSpread(limiter, { spreadMs, maxTracked, now: () => t })
  const order: string[] = []
  const signal = new AbortController().signal
  const send = (chunk: string, tag = chunk) =>
    spread.take(chunk, 100, signal).then(() => {
      order.push(tag)
    })
  /** Sends `chunk` `times` over with nothing else waiting (its count goes up by as much), tagged 'warm'. */
  const warm = async (chunk: string, times = 1) => {
    for (let i = 0; i < times; i++) {
      void send(chunk, 'warm')
      await limiter.grant()
    }
  }
  return { limiter, spread, order, send, warm, tick: (ms: number) => (t += ms) }
}

describe('UploadSpread: the order of chunks waiting on an upload limit', () => {
  it('sends a chunk never sent before one already sent, among those waiting', async () => {
    const { limiter, spread, order, send, tick } = setup(10_000)
    void send('a:0', 'a:0 first')
    await limiter.grant()
    expect(spread.sentCount('a:0')).toBe(1)
    // Both wait while the limiter is busy with a third: a:0 arrived first but went out once already.
    void send('a:2')
    tick(1)
    void send('a:0', 'a:0 again')
    tick(1)
    void send('a:1')
    await limiter.grant(3)
    expect(order).toEqual(['a:0 first', 'a:2', 'a:1', 'a:0 again'])
    expect(spread.sentCount('a:0')).toBe(2)
  })

  it('a chunk sent once goes after a fresh one that arrived up to spreadMs / 2 later, not more', async () => {
    const { limiter, order, send, warm, tick } = setup(1_000)
    await warm('c:0')
    void send('c:9', 'holds the limiter')
    void send('c:0', 'sent once, early')
    tick(600)
    void send('c:1', 'fresh, 600 ms later')
    void send('c:0', 'sent once, late')
    tick(300)
    void send('c:2', 'fresh, 300 ms later')
    await limiter.grant(5)
    expect(order).toEqual([
      'warm',
      'holds the limiter',
      'sent once, early',
      'fresh, 600 ms later',
      'fresh, 300 ms later',
      'sent once, late',
    ])
  })

  it('orders by times sent, and however often a chunk went it waits less than spreadMs extra: nothing starves', async () => {
    const { limiter, order, send, warm, tick } = setup(1_000)
    await warm('hot:0', 50)
    await warm('twice:0', 2)
    order.length = 0
    void send('z:9', 'holds the limiter')
    void send('hot:0', 'sent 50 times')
    tick(100)
    void send('twice:0', 'sent twice')
    tick(870)
    void send('z:1', 'fresh, 970 ms after the hot one')
    tick(20)
    void send('z:2', 'fresh, 990 ms after the hot one')
    await limiter.grant(5)
    expect(order).toEqual([
      'holds the limiter',
      // 100 ms + 1000 × 2/3
      'sent twice',
      'fresh, 970 ms after the hot one',
      // 1000 × 50/51: 980 ms
      'sent 50 times',
      'fresh, 990 ms after the hot one',
    ])
  })

  it('is first come, first served with spreadMs 0', async () => {
    const { limiter, order, send } = setup(0)
    void send('x:0', 'x:0 first')
    await limiter.grant()
    void send('x:5')
    void send('x:0', 'x:0 again')
    void send('x:1')
    await limiter.grant(3)
    expect(order).toEqual(['x:0 first', 'x:5', 'x:0 again', 'x:1'])
  })

  it('takes one grant at a time from the limiter beneath', async () => {
    const { limiter, spread, send } = setup(10_000)
    for (let i = 0; i < 5; i++) void send(`k:${i}`)
    expect(limiter.pending).toHaveLength(1)
    expect(spread.waiting).toBe(4)
    await limiter.grant()
    expect(limiter.pending).toHaveLength(1)
    expect(spread.waiting).toBe(3)
  })

  it('an aborted waiter leaves with AbortedError and the others go on', async () => {
    const { limiter, spread, order, send } = setup(10_000)
    void send('m:0')
    const ctrl = new AbortController()
    const gone = spread.take('m:1', 100, ctrl.signal)
    void send('m:2')
    ctrl.abort()
    await expect(gone).rejects.toBeInstanceOf(AbortedError)
    expect(spread.waiting).toBe(1)
    await limiter.grant()
    await limiter.grant()
    expect(order).toEqual(['m:0', 'm:2'])
    expect(spread.sentCount('m:1')).toBe(0)
  })

  it('an abort while the limiter beneath holds the take rejects it there (a real bucket)', async () => {
    const bucket = new TokenBucket({ rate: 1_000, burst: 1_000 })
    const spread = new UploadSpread(bucket, { spreadMs: 10_000, maxTracked: 10 })
    const ctrl = new AbortController()
    await spread.take('b:0', 1_000, ctrl.signal)
    const late = spread.take('b:1', 1_000, ctrl.signal)
    const after = spread.take('b:2', 10, new AbortController().signal)
    ctrl.abort()
    await expect(late).rejects.toBeInstanceOf(AbortedError)
    await after
    expect(spread.sentCount('b:1')).toBe(0)
    expect(spread.sentCount('b:2')).toBe(1)
  })

  it('a refund takes the send back from the count and gives the bytes to the limiter', async () => {
    const { limiter, spread, warm } = setup(10_000)
    await warm('r:0', 2)
    expect(spread.sentCount('r:0')).toBe(2)
    spread.refund('r:0', 100)
    expect(spread.sentCount('r:0')).toBe(1)
    expect(limiter.refunded).toBe(100)
    spread.refund('r:0', 100)
    spread.refund('r:0', 100)
    expect(spread.sentCount('r:0')).toBe(0)
  })

  it('keeps counts for at most maxTracked chunks, forgetting the least recently sent', async () => {
    const { spread, warm } = setup(10_000, 3)
    for (const c of ['t:0', 't:1', 't:2', 't:0', 't:3']) await warm(c)
    // t:1 was sent least recently when t:3 made a fourth.
    expect(spread.sentCount('t:1')).toBe(0)
    expect(spread.sentCount('t:0')).toBe(2)
    expect(spread.sentCount('t:2')).toBe(1)
    expect(spread.sentCount('t:3')).toBe(1)
  })

  it('refuses a bad byte count or an aborted signal at once', async () => {
    const { spread } = setup(10)
    await expect(spread.take('z:0', -1, new AbortController().signal)).rejects.toThrow()
    await expect(spread.take('z:0', 10, AbortSignal.abort())).rejects.toBeInstanceOf(AbortedError)
    expect(spread.waiting).toBe(0)
  })
})
