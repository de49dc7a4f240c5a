import { describe, expect, it } from 'vitest'
import { formatHostPort, parseHostPort } from '../../src/metrics/address.ts'

describe('metrics.listen addresses', () => {
  it('reads host:port, [v6]:port and names; writes them back', () => {
    for (const [text, host, port] of [
      ['127.0.0.1:9464', '127.0.0.1', 9464],
      ['0.0.0.0:0', '0.0.0.0', 0],
      ['[::1]:9464', '::1', 9464],
      ['localhost:65535', 'localhost', 65535],
    ] as const) {
      expect(parseHostPort(text)).toEqual({ host, port })
      expect(formatHostPort({ host, port })).toBe(text)
    }
  })

  it('refuses what is not one', () => {
    for (const bad of [
      '',
      '9464',
      ':9464',
      '127.0.0.1',
      '127.0.0.1:',
      '::1:9464',
      'a b:1',
      'h:65536',
      'h:-1',
      '[x]:1',
    ])
      expect(parseHostPort(bad), bad).toBeUndefined()
  })
})
