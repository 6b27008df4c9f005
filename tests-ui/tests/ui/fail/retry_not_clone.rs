use resilience::retry;

pub struct Connection;

#[retry(preset = "quick")]
async fn send(conn: Connection, payload: String) -> Result<(), std::io::Error> {
    let _ = (conn, payload);
    Ok(())
}

fn main() {
    let _ = send(Connection, String::new());
}
