import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNode } from '../../src/net/node.ts'
import { type PeerProcess, spawnPeer } from '../support/children.ts'
import { tempDir, writeFile } from '../support/files.ts'

/** The shortest bound allowed (timeouts.deadConnectionMs). */
const DEAD_MS = 5_000

/**
 * A real peer in its own process, and a node here dialing it, both judging connections dead
 * after DEAD_MS of silence. A frozen peer (SIGSTOP: its kernel still acknowledges, its process
 * answers nothing) must be let go; a live idle one, kept for many times that bound, by the
 * pings that go out three times per bound.
 */
describe('connections whose peer is gone are closed; live idle ones are kept', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const peers: PeerProcess[] = []

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(async () => {
    for (const p of peers) p.proc.kill('SIGKILL')
    await cleanup?.()
  })

  const startPeer = async (): Promise<{ peer: PeerProcess; addr: string }> => {
    const file = `${dir}/f${peers.length}.bin`
    await writeFile(file, 1024, 'random')
    const peer = spawnPeer({
      mode: 'send',
      file,
      engine: { listen: ['/ip4/127.0.0.1/tcp/0'], timeouts: { deadConnectionMs: DEAD_MS } },
    })
    peers.push(peer)
    const published = await peer.waitFor((e) => e.event === 'published', 'published')
    const [addr] = published.addrs as string[]
    return { peer, addr: addr!.includes('/p2p/') ? addr! : `${addr}/p2p/${published.peerId as string}` }
  }

  it('an idle connection to a live peer stays open for three times the bound', async () => {
    const { addr } = await startPeer()
    const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], deadConnectionMs: DEAD_MS })
    try {
      const closed: unknown[] = []
      node.addEventListener('connection:close', (e) => closed.push(e.detail))
      const conn = await node.dial(multiaddr(addr))
      await new Promise((r) => setTimeout(r, 3 * DEAD_MS))
      expect(closed).toEqual([])
      expect(conn.status).toBe('open')
    } finally {
      await node.stop()
    }
  }, 30_000)

  it('a connection to a frozen peer is closed after the bound', async () => {
    const { peer, addr } = await startPeer()
    const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0'], deadConnectionMs: DEAD_MS })
    try {
      const conn = await node.dial(multiaddr(addr))
      const closed = new Promise<void>((resolve) =>
        node.addEventListener('connection:close', (e) => {
          if (e.detail === conn) resolve()
        }),
      )
      const frozenAt = performance.now()
      peer.proc.kill('SIGSTOP')
      await closed
      const after = performance.now() - frozenAt
      expect(conn.status).toBe('aborted')
      // Not before the bound, and by this rule, not libp2p's (an unanswered ping: 10 s at least).
      expect(after).toBeGreaterThanOrEqual(DEAD_MS)
      expect(after).toBeLessThan(2 * DEAD_MS)
    } finally {
      peer.proc.kill('SIGCONT')
      await node.stop()
    }
  }, 30_000)
})
