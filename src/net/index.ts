/**
 * @packageDocumentation
 * haul's network layer: a libp2p node (TCP + Noise + Yamux, with libp2p's relay and NAT parts), a
 * `Network` that owns it, and `FrameStream`, the only stream type the engine sees.
 *
 * @example
 * ```ts
 * const server = await Network.create({ dataDir: '/var/lib/haul' })
 * await server.handle('/haul/1', async (stream) => {
 *   for await (const data of stream.incoming) await stream.write([data.subarray()])
 *   await stream.close()
 * })
 * const client = await Network.create()
 * const s = await client.openStream(server.peerId, server.addresses, '/haul/1')
 * await s.write([new TextEncoder().encode('hello')])
 * await s.closeWrite()
 * for await (const data of s.incoming) console.log(data.byteLength)
 * await Promise.all([client.stop(), server.stop()])
 * ```
 */
export { IDENTITY_FILE, loadOrCreateIdentity } from './identity.ts'
export { Network } from './network.ts'
export { createNode } from './node.ts'
export {
  defaultNetworkOptions,
  defaultNodeOptions,
  defaultYamuxTuning,
  type NetworkOptions,
  type NodeOptions,
  type YamuxTuning,
} from './options.ts'
export {
  defaultWrapStreamOptions,
  type FrameStream,
  type WrapStreamOptions,
  wrapStream,
} from './stream-io.ts'
