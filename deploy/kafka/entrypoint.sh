#!/bin/bash
# Write server.properties from KAFKA_* variables (the official apache/kafka image's rule:
# KAFKA_ dropped, lower case, "_" -> ".", "___" -> "-", "__" -> "_"), format the KRaft storage
# with $CLUSTER_ID on first start, then run the broker in the foreground as PID 1's child-free
# replacement (exec), so SIGTERM reaches it and it shuts down in a controlled way.
set -euo pipefail

config=/opt/kafka/config/server.properties
: "${CLUSTER_ID:?CLUSTER_ID must be set (any base64 UUID, the same on every node)}"

# JVM options, not broker settings (the same exclusions as the official image).
excluded=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_JMX_OPTS \
KAFKA_LOG4J_OPTS KAFKA_VERSION "

: > "$config"
while IFS='=' read -r -d '' name value; do
  [[ $name == KAFKA_* ]] || continue
  [[ $excluded == *" $name "* ]] && continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//_/.}
  key=${key//.../-}
  key=${key//../_}
  printf '%s=%s\n' "$key" "$value" >> "$config"
done < <(env -0)
grep -q '^log.dirs=' "$config" || echo "log.dirs=/var/lib/kafka/data" >> "$config"

java=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError
      -Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties
      ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*')

"${java[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" -c "$config"
exec "${java[@]}" kafka.Kafka "$config"
