// Node 20 lacks Promise.withResolvers (Node 22+), which libp2p 3 and helia 7 use.
// Import this module before anything from libp2p: ES modules are evaluated in
// import order, so `import './polyfill.mjs'` on the first line is enough.
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
