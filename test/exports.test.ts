import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import * as haul from '../src/index.ts'
import { useEngines } from './support/engines.ts'

/** The names src/index.ts exports by name (types included, which an import of it at run time cannot see). */
async function namedExports(): Promise<Set<string>> {
  const file = new URL('../src/index.ts', import.meta.url)
  const source = ts.createSourceFile('index.ts', await readFile(file, 'utf8'), ts.ScriptTarget.Latest)
  const names = new Set<string>()
  for (const s of source.statements) {
    if (ts.isExportDeclaration(s) && s.exportClause !== undefined && ts.isNamedExports(s.exportClause)) {
      for (const e of s.exportClause.elements) names.add(e.name.text)
    }
  }
  return names
}

describe('the package entry exports what an embedder of the API needs', () => {
  const engines = useEngines({ listen: ['/ip4/127.0.0.1/tcp/0'], workers: 1 })

  it("names every type the API's options, callbacks and results use", async () => {
    const names = await namedExports()
    for (const type of [
      // fetchCollection's options, its onProgress's argument, its result; publishCollection's index.
      'CollectionFetchOptions',
      'CollectionProgress',
      'CollectionResult',
      'CollectionIndex',
      // onRoute's argument; TransferProgress.check.
      'TransferRoute',
      'CheckProgress',
      'FetchOptions',
      'TransferProgress',
      'SwarmTicket',
    ]) {
      expect(names, type).toContain(type)
    }
  })

  it("reads what publish returns: decodeSwarmTicket reads its tickets, cidToString and cidFromString turn a content id's bytes into the text ServeEvent and unpublish use, and back", async () => {
    const sender = await engines.engine()
    const receiver = await engines.engine()
    const src = join(engines.dir, 'exports.bin')
    await writeFile(src, Buffer.alloc(2000, 5))
    const published = await sender.publish(src)
    const other = join(engines.dir, 'exports-folder.bin')
    await writeFile(other, Buffer.alloc(3000, 6))
    const collection = await sender.publishCollection([other])

    const file = haul.decodeSwarmTicket(published.ticket)
    expect(file.cid).toEqual(published.index.cid)
    expect(file.name).toBe('exports.bin')
    expect(file.providers[0]?.peerId).toBe(sender.peerId)
    const folder = haul.decodeSwarmTicket(collection.ticket)
    expect(folder.kind).toBe('collection')
    expect(folder.cid).toEqual(collection.index.cid)

    const text = haul.cidToString(published.index.cid)
    expect(haul.cidFromString(text)).toEqual(published.index.cid)
    const asked: string[] = []
    const off = sender.onServe((e) => {
      if (e.type === 'content-requested') asked.push(e.cid)
    })
    await receiver.fetch(published.ticket, join(engines.dir, 'exports.out')).result
    off()
    expect(asked).toContain(text)

    // The version-1 codec reads none of what engines write: the entry does not offer it.
    expect(haul).not.toHaveProperty('decodeTicket')
    expect(haul).not.toHaveProperty('encodeTicket')
    expect((await namedExports()).has('Ticket')).toBe(false)
  })
})
