import type { VerifiedLeafTable } from '../../descriptor/verified.ts'
import { ProtocolViolationError } from '../../errors.ts'
import type { LeafStore } from './partial.ts'
import type { PeerLink } from './peer-link.ts'

/**
 * Makes the verified leaf pages of chunks [start, end) available in `local.table`, asking live
 * peers in turn (complete ones first: a partial seeder holds only the pages of chunks it has).
 * Each page is proved against the root on arrival (a bad proof is the peer's error, reported
 * through `onError`), and kept in the leaf sidecar so this peer can serve it on (partial seeding).
 * A page no live peer can give stays missing: its chunks are simply not picked yet.
 */
export async function ensurePages(
  window: { start: number; end: number },
  links: readonly PeerLink[],
  local: { readonly table: VerifiedLeafTable; readonly leaves: LeafStore },
  cid: Uint8Array,
  opts: { signal: AbortSignal; onError: (link: PeerLink, err: unknown) => void },
): Promise<void> {
  const { table } = local
  if (window.start >= window.end) return
  for (let page = table.pageOf(window.start); page <= table.pageOf(window.end - 1); page++) {
    if (table.has(page)) continue
    const up = links.filter((l) => l.up)
    up.sort((a, b) => Number(b.have === 'all') - Number(a.have === 'all'))
    for (const link of up) {
      if (await fetchPage(link, page, local, cid, opts)) break
    }
  }
}

async function fetchPage(
  link: PeerLink,
  page: number,
  local: { readonly table: VerifiedLeafTable; readonly leaves: LeafStore },
  cid: Uint8Array,
  opts: { signal: AbortSignal; onError: (link: PeerLink, err: unknown) => void },
): Promise<boolean> {
  const { table, leaves } = local
  const got: Array<{ entries: Uint8Array; proof: Uint8Array[] }> = []
  try {
    await link.session!.request(
      (requestId) => ({ type: 'get-pages', requestId, cid, firstPage: page, count: 1 }),
      (msg) => {
        if (msg.type === 'end') return 'done'
        if (msg.type !== 'page' || msg.pageIndex !== page) {
          throw new ProtocolViolationError(`unexpected ${msg.type} in reply to get-pages`)
        }
        table.acceptPage(msg.pageIndex, msg.entries, msg.proof)
        got.push({ entries: new Uint8Array(msg.entries), proof: [...msg.proof] })
        return 'more'
      },
      { signal: opts.signal },
    )
  } catch (err) {
    if (opts.signal.aborted) throw err
    opts.onError(link, err)
    return false
  }
  for (const g of got) await leaves.put(page, g)
  return table.has(page)
}
