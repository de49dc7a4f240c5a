import { afterEach, describe, expect, it } from 'vitest'
import { libp2pLogger, startLibp2p } from '../../src/net/node.ts'
import { resolveNodeOptions } from '../../src/net/options.ts'

describe('libp2pLogger', () => {
  it('without DEBUG, every component gets one silent logger', () => {
    const components = libp2pLogger({})
    expect(components).toBeDefined()
    const log = components!.forComponent('libp2p:yamux')
    expect(log.enabled).toBe(false)
    expect(log.newScope('stream')).toBe(log)
    expect(components!.forComponent('libp2p:tcp')).toBe(log)
    expect(() => {
      log('dropped %s', 'x')
      log.error('dropped')
      log.trace('dropped')
    }).not.toThrow()
    expect(libp2pLogger({ DEBUG: '' })).toBeDefined()
  })

  it('with DEBUG set, libp2p keeps its own logger', () => {
    expect(libp2pLogger({ DEBUG: 'libp2p:*' })).toBeUndefined()
  })
})

describe('startLibp2p', () => {
  let node: Awaited<ReturnType<typeof startLibp2p>> | undefined
  afterEach(async () => {
    await node?.stop()
    node = undefined
  })

  it('starts a node with the silent logger when DEBUG is unset', async () => {
    const before = process.env.DEBUG
    delete process.env.DEBUG
    try {
      node = await startLibp2p(resolveNodeOptions({ listen: ['/ip4/127.0.0.1/tcp/0'] }))
    } finally {
      if (before !== undefined) process.env.DEBUG = before
    }
    expect(node.status).toBe('started')
    expect(node.logger.forComponent('x').enabled).toBe(false)
  })
})
