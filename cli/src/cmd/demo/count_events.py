print(events.num_rows, "events")
for row in events.group_by(["table_name", "op"]).aggregate([("lsn", "count")]).sort_by([("table_name", "ascending"), ("op", "ascending")]).to_pylist():
    print(f'{row["table_name"]:<9} {row["op"]:<7} {row["lsn_count"]}')
