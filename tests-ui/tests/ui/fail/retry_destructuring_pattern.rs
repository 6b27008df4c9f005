use resilience::retry;

#[retry]
async fn fetch((host, port): (String, u16)) -> Result<u32, std::io::Error> {
    let _ = (host, port);
    Ok(1)
}

fn main() {
    let _ = fetch((String::new(), 80));
}
