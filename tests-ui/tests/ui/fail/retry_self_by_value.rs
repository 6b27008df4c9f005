use resilience::retry;

struct Client;

impl Client {
    #[retry]
    async fn fetch(self) -> Result<u32, std::io::Error> {
        Ok(1)
    }
}

fn main() {
    let _ = Client.fetch();
}
