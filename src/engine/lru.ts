/**
 * Recency order for caches: an intrusive doubly linked list, so touching,
 * removing and evicting an entry are O(1) without a second Map.
 */

export interface LruNode {
  lruPrev: LruNode | undefined
  lruNext: LruNode | undefined
}

export class LruList<T extends LruNode> {
  #oldest: T | undefined
  #newest: T | undefined
  #size = 0

  get size(): number {
    return this.#size
  }

  /** The least recently used node, next in line for eviction. */
  get oldest(): T | undefined {
    return this.#oldest
  }

  /** Inserts a node that is not in the list as the most recently used. */
  push(node: T): void {
    node.lruPrev = this.#newest
    node.lruNext = undefined
    if (this.#newest === undefined) this.#oldest = node
    else this.#newest.lruNext = node
    this.#newest = node
    this.#size++
  }

  remove(node: T): void {
    if (node.lruPrev === undefined) this.#oldest = node.lruNext as T | undefined
    else node.lruPrev.lruNext = node.lruNext
    if (node.lruNext === undefined) this.#newest = node.lruPrev as T | undefined
    else node.lruNext.lruPrev = node.lruPrev
    node.lruPrev = node.lruNext = undefined
    this.#size--
  }

  /** Marks a node already in the list as the most recently used. */
  touch(node: T): void {
    if (node === this.#newest) return
    this.remove(node)
    this.push(node)
  }

  /** Oldest first. Safe against removing the current node while iterating. */
  *[Symbol.iterator](): IterableIterator<T> {
    let node = this.#oldest
    while (node !== undefined) {
      const next = node.lruNext as T | undefined
      yield node
      node = next
    }
  }
}
