// Preloaded (`node --require`) into the e2b CLI by the tests: a TCP connection to anything but loopback is
// refused, and reported on stderr with the marker below so that a test can assert none was attempted, even
// by code that swallows the error (such as an update check).
'use strict'

const net = require('node:net')

const MARKER = 'refused by loopback_only:'

function isLoopback(host) {
  return (
    host === undefined ||
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    host.startsWith('127.')
  )
}

function target(args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0]
  if (first !== null && typeof first === 'object') {
    return { host: first.host, port: first.port, path: first.path }
  }
  return typeof first === 'string' && Number.isNaN(Number(first))
    ? { path: first }
    : { host: args[1], port: first }
}

const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...args) {
  const { host, port, path } = target(args)
  if (path === undefined && !isLoopback(host)) {
    process.stderr.write(`${MARKER} ${host}:${port}\n`)
    throw new Error(`${MARKER} ${host}:${port}`)
  }
  return connect.apply(this, args)
}
