import { open } from 'node:fs/promises'
import { DescriptorReader } from '../../src/descriptor/reader.ts'
import { type Engine, engineInternals } from '../../src/engine/engine.ts'
import { LeafStore } from '../../src/fetch/partial-seed.ts'
import { PeerLink } from '../../src/fetch/peer-link.ts'
import { openStorage } from '../../src/fetch/resume.ts'
import type { IndexResult } from '../../src/serve/indexer.ts'
import { defaultJournalOptions } from '../../src/storage/journal.ts'
import { decodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'

/**
 * Builds what an interrupted multi-peer fetch leaves at `dest`: `<dest>.part` holding the chunks
 * `pick` selects (copied from the original), its resume journal naming exactly those, and the
 * leaf sidecar with the pages (and proofs) those chunks need.
 */
export async function writePartialCopy(
  file: string,
  index: IndexResult,
  dest: string,
  pick: (i: number) => boolean,
): Promise<void> {
  const { header } = index
  const { part, journal } = await openStorage({
    dest,
    cid: index.cid,
    headerBytes: index.headerBytes,
    totalSize: header.totalSize,
    leafCount: header.leafCount,
    journal: { ...defaultJournalOptions, minBytes: 0 }, // a partial seed needs its journal at any size
    overwrite: false,
  })
  const reader = await DescriptorReader.open(index.descriptorPath)
  const leaves = await LeafStore.open(dest, header, true)
  const src = await open(file, 'r')
  try {
    for (let p = 0; p < reader.pageCount; p++) await leaves.put(p, await reader.readPage(p))
    for (let i = 0; i < header.leafCount; i++) {
      if (!pick(i)) continue
      const e = await reader.entry(i)
      const buf = new Uint8Array(e.length)
      await src.read(buf, 0, e.length, e.offset)
      await part.write(e.offset, buf)
      await journal.record(i, e.length)
    }
    await journal.flush()
  } finally {
    await src.close()
    await reader.close()
    await leaves.close()
    await journal.close()
    await part.close()
  }
}

/**
 * Asks the seeder `ticket` names (through `asker`'s network, with the ticket's secret) for its
 * have-bitmap, a chunk it lacks (10) and one it has (0).
 */
export async function probe(asker: Engine, ticket: string, leafCount: number) {
  const signal = AbortSignal.timeout(20_000)
  const { cid, providers } = decodeSwarmTicket(ticket)
  const link = new PeerLink(providers[0]!)
  const deps = {
    cid,
    ...engineInternals(asker),
    limits: asker.config.fetch,
    timeouts: asker.config.timeouts,
    maxFrame: asker.config.server.maxFrame,
  }
  await link.connect(deps, signal)
  try {
    const bits = await link.fetchHave(cid, leafCount, signal)
    const have = Array.from({ length: leafCount }, (_, i) => bits !== 'all' && bits.get(i))
    const getChunk = (i: number) =>
      link.session!.request(
        (requestId) => ({
          type: 'get-chunks',
          requestId,
          cid,
          ranges: [{ start: i, end: i + 1 }],
          secret: link.provider.secret,
        }),
        (msg) => (msg.type === 'end' ? 'done' : 'more'),
        { signal },
      )
    const missing = await getChunk(10).then(
      () => undefined,
      (e: unknown) => e,
    )
    const present = await getChunk(0).then(() => true)
    return { have, missing, present }
  } finally {
    link.drop(new Error('probe done') as never)
  }
}
