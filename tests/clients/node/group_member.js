'use strict'
// A consumer group member for Spate's group tests on kafkajs: the same flags and event lines as
// every group member program (see ../README.md, "Group members"). kafkajs has no rebalance
// callbacks; its GROUP_JOIN event carries the member's whole assignment, so each join is
// written as a revoke of the previous assignment followed by the new one (kafkajs rebalances
// eagerly). Offsets are committed after every batch; the stop file makes it leave the group.

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

// Bound on any single request.
const REQUEST_TIMEOUT_MS = 30000
// How often the stop file is looked for.
const STOP_POLL_MS = 100

function parseArgs (argv) {
  const args = { topic: [] }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (name === 'topic') args.topic.push(argv[i + 1])
    else args[name] = argv[i + 1]
  }
  return args
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const out = fs.openSync(args.out, 'a')
  const write = (event, fields = {}) => {
    fs.writeSync(out, JSON.stringify({ ...fields, event, ts: Date.now() }) + '\n')
  }
  const sessionTimeout = parseInt(args.sessionTimeoutMs || '10000', 10)
  const kafka = new Kafka({
    clientId: args.clientId || 'group-member',
    brokers: [args.bootstrap],
    requestTimeout: REQUEST_TIMEOUT_MS,
    logLevel: logLevel.WARN,
  })
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout,
    heartbeatInterval: Math.max(Math.floor(sessionTimeout / 10), 100),
  })
  let owned = []
  consumer.on(consumer.events.GROUP_JOIN, event => {
    write('revoked', { partitions: owned })
    owned = []
    for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
      for (const p of partitions) owned.push([topic, p])
    }
    owned.sort()
    write('assigned', { partitions: owned })
  })
  await consumer.connect()
  for (const topic of args.topic) await consumer.subscribe({ topic, fromBeginning: true })
  write('started', { pid: process.pid })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, heartbeat }) => {
      let next = null
      for (const message of batch.messages) {
        write('record', {
          topic: batch.topic,
          partition: batch.partition,
          offset: parseInt(message.offset, 10),
          key: message.key === null ? null : Buffer.from(message.key).toString('hex'),
        })
        next = (BigInt(message.offset) + 1n).toString()
      }
      if (next !== null) {
        try {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }])
          write('committed', { offsets: [[batch.topic, batch.partition, parseInt(next, 10)]] })
        } catch (error) {
          write('commit_failed', { error: String(error) })
        }
      }
      await heartbeat()
    },
  })
  await new Promise(resolve => {
    const timer = setInterval(() => {
      if (fs.existsSync(args.stopFile)) {
        clearInterval(timer)
        resolve()
      }
    }, STOP_POLL_MS)
  })
  await consumer.disconnect()
  write('closed')
  fs.closeSync(out)
  process.exit(0)
}

main().catch(error => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n')
  process.exit(1)
})
