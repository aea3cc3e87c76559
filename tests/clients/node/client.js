'use strict'
// kafkajs client program for Spate's end-to-end tests: the same five commands and file formats as
// every other client program (see ../README.md). Bytes travel hex-encoded.
//
// kafkajs limits, each reflected in the tests rather than worked around:
// - codecs: gzip is built in and snappy comes from kafkajs-snappy (pure JavaScript); lz4 and zstd
//   exist only as native-module codecs, which are not installed, so they are not tested;
// - consuming needs a consumer group (kafkajs has no assign()), so `consume` joins a fresh group;
// - admin.fetchTopicOffsetsByTimestamp answers "no offset at or after T" with the end offset.

const fs = require('fs')
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

// Bound on any single request, so a broken broker fails the test instead of hanging it.
const REQUEST_TIMEOUT_MS = 30000
// How long `consume` waits for the expected records unless told otherwise.
const DEFAULT_CONSUME_TIMEOUT_MS = 60000
// Records per producer.send(): large enough to batch, small enough to keep requests modest.
const SEND_CHUNK_RECORDS = 500

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
}

function fail (message) {
  process.stderr.write(message + '\n')
  process.exit(1)
}

function parseArgs (argv) {
  const [command, ...rest] = argv
  const args = { command, config: [], timestamp: [] }
  for (let i = 0; i < rest.length; i += 2) {
    const flag = rest[i]
    const value = rest[i + 1]
    if (!flag.startsWith('--') || value === undefined) fail(`bad argument ${flag}`)
    const name = flag.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (name === 'config' || name === 'timestamp') args[name].push(value)
    else args[name] = value
  }
  if (!args.bootstrap || !args.topic) fail('--bootstrap and --topic are required')
  return args
}

const hex = buf => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('hex'))
const unhex = text => (text === null || text === undefined ? null : Buffer.from(text, 'hex'))

function kafka (bootstrap) {
  return new Kafka({
    clientId: 'spate-e2e-kafkajs',
    brokers: [bootstrap],
    requestTimeout: REQUEST_TIMEOUT_MS,
    logLevel: logLevel.WARN,
  })
}

async function createTopic (args) {
  const admin = kafka(args.bootstrap).admin()
  await admin.connect()
  const configEntries = args.config.map(kv => {
    const at = kv.indexOf('=')
    if (at < 0) fail(`--config expects KEY=VALUE, got ${kv}`)
    return { name: kv.slice(0, at), value: kv.slice(at + 1) }
  })
  const created = await admin.createTopics({
    waitForLeaders: true,
    timeout: REQUEST_TIMEOUT_MS,
    topics: [{ topic: args.topic, numPartitions: Number(args.partitions), replicationFactor: 1, configEntries }],
  })
  await admin.disconnect()
  if (!created) fail(`topic ${args.topic} already exists`)
}

function readInput (path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter(l => l.trim()).map(line => {
    const raw = JSON.parse(line)
    // kafkajs takes headers as an object; a repeated name becomes an array of values, which keeps
    // the order of repeated names as long as they are adjacent (the generator keeps them so).
    const headers = {}
    for (const [name, value] of raw.headers || []) {
      const v = unhex(value)
      if (name in headers) headers[name] = [].concat(headers[name], [v])
      else headers[name] = v
    }
    return { key: unhex(raw.key), value: unhex(raw.value), headers, timestamp: raw.timestamp }
  })
}

async function produce (args) {
  const codec = CODECS[args.codec]
  if (codec === undefined) fail(`codec ${args.codec} is not available in kafkajs here`)
  const records = readInput(args.input)
  const client = kafka(args.bootstrap)
  const admin = client.admin()
  await admin.connect()
  const metadata = await admin.fetchTopicMetadata({ topics: [args.topic] })
  await admin.disconnect()
  const partitionMetadata = metadata.topics[0].partitions
  // The partition of each record is chosen up front with kafkajs's default partitioner, so each
  // record's offset can be derived from the per-partition base offsets that send() reports.
  const partitioner = Partitioners.DefaultPartitioner()
  const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  const out = fs.openSync(args.out, 'w')
  for (let start = 0; start < records.length; start += SEND_CHUNK_RECORDS) {
    const chunk = records.slice(start, start + SEND_CHUNK_RECORDS)
    const messages = chunk.map(r => {
      const message = { key: r.key, value: r.value, headers: r.headers }
      if (r.timestamp !== null && r.timestamp !== undefined) message.timestamp = String(r.timestamp)
      message.partition = partitioner({ topic: args.topic, partitionMetadata, message })
      return message
    })
    const reports = await producer.send({ topic: args.topic, compression: codec, acks: -1, messages })
    const base = {}
    for (const report of reports) {
      if (report.errorCode !== 0) fail(`produce partition ${report.partition}: error ${report.errorCode}`)
      base[report.partition] = BigInt(report.baseOffset)
    }
    const rank = {}
    const lines = messages.map((m, i) => {
      const p = m.partition
      const offset = base[p] + BigInt(rank[p] || 0)
      rank[p] = (rank[p] || 0) + 1
      return JSON.stringify({ index: start + i, partition: p, offset: Number(offset) })
    })
    fs.writeSync(out, lines.join('\n') + '\n')
  }
  fs.closeSync(out)
  await producer.disconnect()
}

function headerPairs (headers) {
  const pairs = []
  for (const [name, value] of Object.entries(headers || {})) {
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, hex(v)])
  }
  return pairs
}

async function consume (args) {
  const expect = Number(args.expect)
  const timeoutMs = Number(args.timeoutMs || DEFAULT_CONSUME_TIMEOUT_MS)
  const consumer = kafka(args.bootstrap).consumer({
    groupId: `spate-e2e-kafkajs-${process.pid}-${Date.now()}`,
    maxWaitTimeInMs: 500,
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [args.topic], fromBeginning: true })
  const out = fs.openSync(args.out, 'w')
  let count = 0
  let finish
  const done = new Promise(resolve => { finish = resolve })
  const timer = setTimeout(finish, timeoutMs)
  // A crash kafkajs will not recover from ends the wait at once, with its reason.
  let crash = null
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    crash = payload.error
    if (!payload.restart) finish()
  })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const lines = batch.messages.map(m => JSON.stringify({
        partition: batch.partition,
        offset: Number(m.offset),
        key: hex(m.key),
        value: hex(m.value),
        headers: headerPairs(m.headers),
        timestamp: Number(m.timestamp),
        // kafkajs keeps the batch's timestamp type in the record's batchContext (1 = LogAppendTime).
        timestamp_type: m.batchContext && m.batchContext.timestampType === 1 ? 'LogAppendTime' : 'CreateTime',
      }))
      if (lines.length > 0) fs.writeSync(out, lines.join('\n') + '\n')
      count += lines.length
      if (count >= expect) finish()
    },
  })
  await done
  clearTimeout(timer)
  fs.closeSync(out)
  await consumer.disconnect()
  if (count < expect) {
    if (crash) fail(`consumer crashed after ${count} of ${expect} records: ${crash.name}: ${crash.message}`)
    fail(`consumed ${count} of ${expect} records within ${timeoutMs} ms`)
  }
}

async function listOffsets (args) {
  const admin = kafka(args.bootstrap).admin()
  await admin.connect()
  const results = []
  for (const ts of args.timestamp) {
    const found = await admin.fetchTopicOffsetsByTimestamp(args.topic, Number(ts))
    const offsets = {}
    for (const { partition, offset } of found) offsets[String(partition)] = Number(offset)
    results.push({ timestamp: Number(ts), offsets })
  }
  await admin.disconnect()
  fs.writeFileSync(args.out, JSON.stringify({ results }, null, 1) + '\n')
}

// DescribeConfigs configSource codes, named as Kafka names them.
const CONFIG_SOURCES = {
  0: 'UNKNOWN',
  1: 'DYNAMIC_TOPIC_CONFIG',
  2: 'DYNAMIC_BROKER_CONFIG',
  3: 'DYNAMIC_DEFAULT_BROKER_CONFIG',
  4: 'STATIC_BROKER_CONFIG',
  5: 'DEFAULT_CONFIG',
  6: 'DYNAMIC_BROKER_LOGGER_CONFIG',
}

async function describeConfigs (args) {
  const admin = kafka(args.bootstrap).admin()
  await admin.connect()
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2 /* TOPIC */, name: args.topic }],
  })
  await admin.disconnect()
  const resource = described.resources[0]
  if (resource.errorCode !== 0) fail(`describe configs: error ${resource.errorCode} ${resource.errorMessage}`)
  const configs = resource.configEntries.map(e => ({
    name: e.configName,
    value: e.configValue,
    source: CONFIG_SOURCES[e.configSource] || String(e.configSource),
    is_default: e.isDefault,
    read_only: e.readOnly,
    sensitive: e.isSensitive,
  })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  fs.writeFileSync(args.out, JSON.stringify({ configs }, null, 1) + '\n')
}

const COMMANDS = {
  'create-topic': createTopic,
  produce,
  consume,
  'list-offsets': listOffsets,
  'describe-configs': describeConfigs,
}

const args = parseArgs(process.argv.slice(2))
const command = COMMANDS[args.command]
if (!command) fail(`unknown command ${args.command}`)
command(args).then(() => process.exit(0), e => fail(`${args.command} failed: ${e.stack || e}`))
