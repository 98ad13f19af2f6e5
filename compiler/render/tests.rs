use super::*;
use crate::render::fixtures;

fn build(model: &Model) -> Build {
    match render(model, &[], &Templates::embedded()) {
        Ok(b) => b,
        Err(d) => panic!("render failed: {d:#?}"),
    }
}

#[test]
fn dump_for_inspection() {
    if let Ok(dir) = std::env::var("INFRA_DUMP_BUILD") {
        for (name, m) in [
            ("accounting", fixtures::accounting()),
            ("three-host", fixtures::three_host()),
            ("minimal", fixtures::minimal()),
        ] {
            write_build(&build(&m), &std::path::Path::new(&dir).join(name)).unwrap();
        }
    }
}
