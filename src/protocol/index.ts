/**
 * @packageDocumentation
 *
 * The haul transfer protocol as bytes: message types, frame layout, encoder and decoder.
 * Knows nothing of files, peers or libp2p; the network layer moves the buffers.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FRAME, encodeMessage, FrameDecoder } from './protocol/index.ts'
 *
 * const decoder = new FrameDecoder({ maxFrame: DEFAULT_MAX_FRAME })
 * const wire = encodeMessage({ type: 'get-chunks', requestId: 7, cid: root, ranges: [{ start: 0, end: 16 }] })
 * for (const buf of wire) decoder.push(buf) // in real use: each buffer the stream delivers
 * for (const msg of decoder.frames()) {
 *   if (msg.type === 'get-chunks') console.log(msg.ranges)
 * }
 * decoder.finish() // at end of stream: throws FrameTruncatedError if a frame was cut short
 * ```
 */

export { defaultDecoderOptions, type FrameDecoderOptions, verifyDecoderOptions } from './config.ts'
export { FrameDecoder } from './decoder.ts'
export { encodeMessage, errorMessage } from './encoder.ts'
export { DEFAULT_MAX_FRAME, FRAME_HEADER_BYTES, MAX_FRAME_LIMIT, MIN_MAX_FRAME } from './frame.ts'
export * from './messages.ts'
