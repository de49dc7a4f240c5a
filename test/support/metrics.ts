/** One scrape: every sample of a Prometheus text exposition, by `name{labels}` as written. */
export type Scrape = Map<string, number>

/** GETs `path` of a metrics endpoint at `address` (host:port) over HTTP. */
export async function get(address: string, path = '/metrics', method = 'GET'): Promise<Response> {
  return fetch(`http://${address}${path}`, { method })
}

export async function scrape(address: string): Promise<Scrape> {
  const res = await get(address)
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`)
  return parseExposition(await res.text())
}

export function parseExposition(text: string): Scrape {
  const out: Scrape = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

/** The value of `name{labels}` (labels as prom-client writes them: in declaration order). */
export function value(s: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')
  return s.get(l === '' ? name : `${name}{${l}}`)
}

/** The samples of metric `name`, by their labels. */
export function samples(s: Scrape, name: string): Array<[string, number]> {
  return [...s].filter(([k]) => k === name || k.startsWith(`${name}{`))
}
