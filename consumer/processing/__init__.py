"""Key-ordered concurrent processing of a partitioned topic with safe offset commits.

Model: Confluent Parallel Consumer's KEY mode. Records of one key run strictly in order, records
of different keys run concurrently (even within one partition), and a partition's committed
offset never passes its lowest unfinished record.
"""
