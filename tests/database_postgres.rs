//! Issue 12's failure scenarios on a real PostgreSQL server (tests/support/postgres.rs).

mod support;

use support::postgres::PostgresServer;

#[test]
fn support_server_starts_restarts_and_is_killed() {
    let t = std::time::Instant::now();
    let mut pg = PostgresServer::start();
    eprintln!("start: {:?}", t.elapsed());
    assert_eq!(pg.psql("SELECT current_database()"), "app");
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let port = pg.port();
    let t = std::time::Instant::now();
    pg.restart();
    eprintln!("restart: {:?}", t.elapsed());
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");
    let t = std::time::Instant::now();
    pg.kill();
    assert!(pg.try_psql("SELECT 1").is_err());
    pg.start_again();
    eprintln!("kill + start_again: {:?}", t.elapsed());
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");
    let dir = pg.dir().to_owned();
    drop(pg);
    assert!(!dir.exists());
}
