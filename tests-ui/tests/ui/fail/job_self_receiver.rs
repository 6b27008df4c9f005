use resilience::job;

struct Mailer;

impl Mailer {
    #[job(queue = "emails")]
    async fn welcome(&self, user: u64) -> Result<(), std::io::Error> {
        let _ = user;
        Ok(())
    }
}

fn main() {
    let _ = Mailer.welcome(1);
}
