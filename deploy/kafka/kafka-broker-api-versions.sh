#!/bin/bash
# Same path and arguments as in the official apache/kafka image, so one compose health check
# (`kafka-broker-api-versions.sh --bootstrap-server ...`) serves both images.
exec java -Xms32m -Xmx128m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Dlog4j2.level=WARN \
  -cp '/opt/kafka/libs/*' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
