//! `walden slots list|create|drop|advance`.

mod common;

use common::*;

#[test]
fn slots_create_list_advance_drop() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    let o = walden(&dir, &["slots", "create", "audit", "--start", "oldest", "--table", "orders", "--op", "insert"]);
    expect(&o, OK);
    assert!(out(&o).contains("created slot \"audit\": restart LSN 1"), "{}", out(&o));
    let o = walden(&dir, &["slots", "create", "live", "--json"]);
    expect(&o, OK);
    assert_eq!(json(&o)["restart_lsn"], 12);
    let o = walden(&dir, &["slots", "create", "at5", "--start", "5"]);
    expect(&o, OK);

    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    let names: Vec<&str> = rows.as_array().expect("rows").iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, vec!["at5", "audit", "live", "s1"]);
    let audit = &rows[1];
    assert_eq!(audit["tables"][0], "orders");
    assert_eq!(audit["operations"][0], "insert");
    assert_eq!(audit["lag_lsns"], 11);
    assert_eq!(rows[0]["confirmed_lsn"], 4);
    assert_eq!(rows[2]["lag_lsns"], 0);
    let text = out(&walden(&dir, &["slots", "list"]));
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("tables=orders ops=insert"), "{text}");
    assert!(text.contains("oldest segment held by"), "{text}");

    let o = walden(&dir, &["slots", "advance", "audit", "8"]);
    expect(&o, OK);
    assert!(out(&o).contains("confirmed up to LSN 8 (restart LSN 9)"), "{}", out(&o));
    let o = walden(&dir, &["slots", "advance", "audit", "4"]);
    expect(&o, OK);
    assert!(out(&o).contains("unchanged"), "{}", out(&o));
    assert_eq!(json(&walden(&dir, &["slots", "advance", "audit", "11", "--json"]))["confirmed_lsn"], 11);

    // Errors.
    let o = walden(&dir, &["slots", "create", "audit"]);
    expect(&o, SLOT_CONFLICT);
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    expect(&walden(&dir, &["slots", "create", "Bad-Name"]), USAGE);
    expect(&walden(&dir, &["slots", "advance", "nope", "3"]), SLOT_NOT_FOUND);
    let o = walden(&dir, &["slots", "drop", "nope"]);
    expect(&o, SLOT_NOT_FOUND);
    assert!(err(&o).contains("does not exist"), "{}", err(&o));

    expect(&walden(&dir, &["slots", "drop", "audit"]), OK);
    assert_eq!(json(&walden(&dir, &["slots", "drop", "live", "--json"]))["dropped"], "live");
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    assert_eq!(rows.as_array().expect("rows").len(), 2);
}

#[test]
fn a_lost_slot_is_listed_with_its_reason_and_refuses_use() {
    let t = tmp();
    let dir = t.path().join("db");
    fixture(&dir);
    write_slot_beyond_the_log(&dir, "lost");
    // Opening the database (recover) invalidates it: it confirmed LSNs the log does not have.
    let o = walden(&dir, &["recover", "--mode", "tolerate-torn-tail"]);
    expect(&o, OK);
    assert!(out(&o).contains("invalidated  slot \"lost\""), "{}", out(&o));
    let rows = json(&walden(&dir, &["slots", "list", "--json"]));
    let row = slot_row(&rows, "lost");
    assert_eq!(row["state"], "lost");
    assert!(row["invalidation_reason"].as_str().expect("reason").contains("beyond the end of the log"));
    assert!(out(&walden(&dir, &["slots", "list"])).contains("slot \"lost\" is lost since"));
    expect(&walden(&dir, &["slots", "advance", "lost", "5"]), SLOT_CONFLICT);
    expect(&walden(&dir, &["tail", "--slot", "lost", "--drain"]), SLOT_CONFLICT);
    expect(&walden(&dir, &["verify"]), OK); // a lost slot is a state, not damage
    expect(&walden(&dir, &["slots", "drop", "lost"]), OK);
}
