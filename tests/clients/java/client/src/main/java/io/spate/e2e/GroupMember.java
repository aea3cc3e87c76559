package io.spate.e2e;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A consumer group member for Spate's group tests on the Java client (kafka-clients 4.3), with
 * the classic or the KIP-848 consumer group protocol. Same flags and event lines as every group
 * member program (see tests/clients/README.md, "Group members"): it subscribes, consumes,
 * commits synchronously after every poll, and closes cleanly when the stop file appears.
 */
public final class GroupMember {
    /** One poll; short so the stop file is noticed quickly. */
    private static final Duration POLL_TIMEOUT = Duration.ofMillis(200);
    private static final HexFormat HEX = HexFormat.of();

    private GroupMember() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> single = new HashMap<>();
        List<String> topics = new ArrayList<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            String flag = argv[i].replaceFirst("^--", "");
            if (flag.equals("topic")) {
                topics.add(argv[i + 1]);
            } else {
                single.put(flag, argv[i + 1]);
            }
        }
        String protocol = single.getOrDefault("protocol", "classic");
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, single.get("bootstrap"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, single.get("group"));
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, single.getOrDefault("client-id", "group-member"));
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (single.containsKey("instance-id")) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, single.get("instance-id"));
        }
        if (protocol.equals("consumer")) {
            // The server assigns (KIP-848); the assignor flag names a server-side assignor.
            if (single.containsKey("assignor")) {
                props.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, single.get("assignor"));
            }
        } else {
            int session = Integer.parseInt(single.getOrDefault("session-timeout-ms", "10000"));
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, Integer.toString(session));
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, Integer.toString(Math.max(session / 10, 100)));
            if (single.containsKey("assignor")) {
                props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignorClass(single.get("assignor")));
            }
        }
        Path stopFile = single.containsKey("stop-file") ? Path.of(single.get("stop-file")) : null;
        try (Events events = new Events(Path.of(single.get("out")));
                KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    events.partitions("assigned", partitions);
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    events.partitions("revoked", partitions);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    events.partitions("lost", partitions);
                }
            };
            if (single.containsKey("topic-pattern") && protocol.equals("consumer")) {
                // A SubscriptionPattern goes to the broker, which matches it (KIP-848 regex).
                consumer.subscribe(new SubscriptionPattern(single.get("topic-pattern")), listener);
            } else if (single.containsKey("topic-pattern")) {
                // A java.util.regex.Pattern is matched by the client against its metadata.
                consumer.subscribe(Pattern.compile(single.get("topic-pattern")), listener);
            } else {
                consumer.subscribe(topics, listener);
            }
            events.write("{\"event\":\"started\"");
            while (stopFile == null || !Files.exists(stopFile)) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(POLL_TIMEOUT);
                Map<TopicPartition, OffsetAndMetadata> positions = new TreeMap<>(
                        (x, y) -> x.topic().equals(y.topic()) ? Integer.compare(x.partition(), y.partition()) : x.topic().compareTo(y.topic()));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    String key = r.key() == null ? "null" : "\"" + HEX.formatHex(r.key()) + "\"";
                    events.write("{\"event\":\"record\",\"topic\":\"" + r.topic() + "\",\"partition\":" + r.partition()
                            + ",\"offset\":" + r.offset() + ",\"key\":" + key);
                    positions.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                if (!positions.isEmpty()) {
                    try {
                        consumer.commitSync(positions);
                        StringBuilder line = new StringBuilder("{\"event\":\"committed\",\"offsets\":[");
                        boolean first = true;
                        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : positions.entrySet()) {
                            line.append(first ? "" : ",").append("[\"").append(e.getKey().topic()).append("\",")
                                    .append(e.getKey().partition()).append(',').append(e.getValue().offset()).append(']');
                            first = false;
                        }
                        events.write(line.append(']').toString());
                    } catch (KafkaException e) {
                        events.write("{\"event\":\"commit_failed\",\"error\":\"" + e.getClass().getSimpleName() + "\"");
                    }
                }
            }
            consumer.close();
            events.write("{\"event\":\"closed\"");
        }
        System.exit(0);
    }

    private static String assignorClass(String name) {
        return switch (name) {
            case "range" -> "org.apache.kafka.clients.consumer.RangeAssignor";
            case "roundrobin" -> "org.apache.kafka.clients.consumer.RoundRobinAssignor";
            case "sticky" -> "org.apache.kafka.clients.consumer.StickyAssignor";
            case "cooperative-sticky" -> "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
            default -> name;
        };
    }

    /** The events file: one JSON object per line, flushed at once. */
    static final class Events implements AutoCloseable {
        private final BufferedWriter out;

        Events(Path path) throws IOException {
            out = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }

        /** Writes `prefix` (an unterminated JSON object) with a timestamp, closed and flushed. */
        synchronized void write(String prefix) {
            try {
                out.write(prefix + ",\"ts\":" + System.currentTimeMillis() + "}\n");
                out.flush();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }

        void partitions(String event, Collection<TopicPartition> partitions) {
            StringBuilder line = new StringBuilder("{\"event\":\"" + event + "\",\"partitions\":[");
            boolean first = true;
            for (TopicPartition tp : partitions) {
                line.append(first ? "" : ",").append("[\"").append(tp.topic()).append("\",").append(tp.partition()).append(']');
                first = false;
            }
            write(line.append(']').toString());
        }

        @Override
        public void close() throws IOException {
            out.close();
        }
    }
}
