//! kcat (Debian) runs the standard client scenario through its command line; its topics are
//! created with rdkafka, since kcat has no admin commands.

use spate_e2e::clients::Kcat;
use spate_e2e::scenario;

#[test]
fn kcat_round_trip_and_offsets() {
    scenario::must_pass(Kcat::find());
}
