// Node 20 lacks Promise.withResolvers (Node 22+). js-ipfs 0.66 resolves `mortice` to a
// release whose `it-queue` calls it, so the daemon dies at start without this. Load it
// first: `node --import ./polyfill.mjs node_modules/ipfs/src/cli.js ...`.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}
