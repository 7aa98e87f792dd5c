//! The checks of the behaviour suite, one `Suite` method each, in the order `Suite::all` runs.

use super::*;

impl Suite<'_> {
    pub(super) fn get_missing_check(&mut self) -> Check {
        const C: &str = "get-missing";
        let missing = self.path("missing.json");
        self.get_missing(C, &missing)?;
        let bogus = Etag("deltasync-conformance-bogus".into());
        match self.get(C, &missing, Some(&bogus))? {
            GetResult::NotFound => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {missing} with If-None-Match: expected NotFound, got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        if let Some(info) = self.ok(C, &format!("head {missing}"), self.remote.head(&missing))? {
            return Err(self.fail(C, format!("head {missing}: expected None, got {info:?}")));
        }
        let dir = self.path("missing-dir");
        let entries = self.list(C, &dir)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} (missing): expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.passed(C);
        Ok(())
    }

    /// Creates `a.json` = "first"; returns its ETag.
    pub(super) fn create_only(&mut self) -> Result<Etag, ConformanceFailure> {
        const C: &str = "create-only";
        let a = self.path("a.json");
        let put = self.put(C, &a, b"first", &PutMode::CreateOnly)?;
        let etag = self.get_body(C, &a, b"first")?;
        self.same_etag(C, &a, put.as_ref(), &etag)?;
        if self.honours_preconditions() {
            self.put_refused(C, &a, b"second", &PutMode::CreateOnly)?;
            let after = self.get_body(C, &a, b"first")?;
            if after != etag {
                return Err(self.fail(
                    C,
                    format!("a refused create changed the ETag of {a} from '{etag}' to '{after}'"),
                ));
            }
            self.passed(C);
        } else {
            self.skip(
                C,
                "preconditions are ignored (cas: none): only the first create checked",
            );
        }
        Ok(etag)
    }

    pub(super) fn conditional_get(&mut self, e1: &Etag) -> Check {
        const C: &str = "conditional-get";
        if !self.caps.conditional_get {
            self.skip(C, "conditional_get is false");
            return Ok(());
        }
        let a = self.path("a.json");
        match self.get(C, &a, Some(e1))? {
            GetResult::NotModified => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {a} with If-None-Match '{e1}' (current): expected NotModified, got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        let bogus = Etag("deltasync-conformance-bogus".into());
        match self.get(C, &a, Some(&bogus))? {
            GetResult::Found { body, .. } if body == b"first" => {}
            other => {
                return Err(self.fail(
                    C,
                    format!(
                        "get {a} with a different If-None-Match: expected Found(\"first\"), \
                         got {}",
                        show_get(&other)
                    ),
                ));
            }
        }
        self.passed(C);
        Ok(())
    }

    /// Updates `a.json` twice with If-Match ("second", then "third" with the ETag the first
    /// update returned); returns the last ETag.
    pub(super) fn update_if_match(&mut self, e1: &Etag) -> Result<Etag, ConformanceFailure> {
        const C: &str = "update-if-match";
        let a = self.path("a.json");
        self.wait_weak_window();
        let put = self.put(C, &a, b"second", &PutMode::UpdateIfMatch(e1.clone()))?;
        let e2 = self.get_body(C, &a, b"second")?;
        self.same_etag(C, &a, put.as_ref(), &e2)?;
        if e2 == *e1 {
            let seen = format!("the ETag of {a} stayed '{e1}' although its content changed");
            if self.cas_is_strict() {
                return Err(self.fail(C, seen));
            }
            self.report.notes.push(seen);
        }
        // The ETag a put returns must be usable for the next If-Match.
        let usable = put.unwrap_or_else(|| e2.clone());
        self.wait_weak_window();
        let put = self.put(C, &a, b"third", &PutMode::UpdateIfMatch(usable))?;
        let e3 = self.get_body(C, &a, b"third")?;
        self.same_etag(C, &a, put.as_ref(), &e3)?;
        self.passed(C);
        Ok(e3)
    }

    pub(super) fn stale_if_match(&mut self, e1: &Etag, e3: &Etag) -> Check {
        const C: &str = "stale-if-match";
        if !self.cas_is_strict() {
            self.skip(
                C,
                format!("cas is {}: a stale If-Match may succeed", self.caps.cas),
            );
            return Ok(());
        }
        let a = self.path("a.json");
        if e1 == e3 {
            return Err(self.fail(C, format!("the first and third ETags of {a} are equal")));
        }
        self.put_refused(C, &a, b"stale", &PutMode::UpdateIfMatch(e1.clone()))?;
        let now = self.get_body(C, &a, b"third")?;
        if now != *e3 {
            return Err(self.fail(
                C,
                format!("a refused If-Match changed the ETag of {a} from '{e3}' to '{now}'"),
            ));
        }
        self.passed(C);
        Ok(())
    }

    pub(super) fn if_match_missing(&mut self) -> Check {
        const C: &str = "if-match-missing";
        if !self.honours_preconditions() {
            self.skip(C, "preconditions are ignored (cas: none)");
            return Ok(());
        }
        let path = self.path("never-created.json");
        let bogus = Etag("deltasync-conformance-bogus".into());
        self.put_refused(C, &path, b"x", &PutMode::UpdateIfMatch(bogus))?;
        self.get_missing(C, &path)?;
        self.passed(C);
        Ok(())
    }

    pub(super) fn overwrite(&mut self) -> Check {
        const C: &str = "overwrite";
        let a = self.path("a.json");
        let put = self.put(C, &a, b"fourth", &PutMode::Overwrite)?;
        let etag = self.get_body(C, &a, b"fourth")?;
        self.same_etag(C, &a, put.as_ref(), &etag)?;
        let o = self.path("o.json");
        self.put(C, &o, b"new", &PutMode::Overwrite)?;
        self.get_body(C, &o, b"new")?;
        self.passed(C);
        Ok(())
    }

    pub(super) fn bodies(&mut self) -> Check {
        const C: &str = "bodies";
        let empty = self.path("empty.bin");
        self.put(C, &empty, b"", &PutMode::CreateOnly)?;
        self.get_body(C, &empty, b"")?;
        let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let bin = self.path("binary.bin");
        self.put(C, &bin, &binary, &PutMode::CreateOnly)?;
        self.get_body(C, &bin, &binary)?;
        self.passed(C);
        Ok(())
    }

    pub(super) fn nested_parents(&mut self) -> Check {
        const C: &str = "nested-parents";
        let deep = self.path("n1/n2/n3.json");
        self.put(C, &deep, b"deep", &PutMode::CreateOnly)?;
        self.get_body(C, &deep, b"deep")?;
        let n1 = self.path("n1");
        let entries = self.list(C, &n1)?;
        if !matches!(entries.as_slice(), [e] if e.name == "n2" && e.is_dir) {
            return Err(self.fail(
                C,
                format!("list {n1}: expected [n2/], got {}", show_names(&entries)),
            ));
        }
        let n2 = self.path("n1/n2");
        let entries = self.list(C, &n2)?;
        if !matches!(entries.as_slice(), [e] if e.name == "n3.json" && !e.is_dir && e.size == 4) {
            return Err(self.fail(
                C,
                format!(
                    "list {n2}: expected [n3.json (4 B)], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.passed(C);
        Ok(())
    }

    pub(super) fn list_and_head(&mut self) -> Check {
        const C: &str = "list";
        // A name with a space, a plus and non-ASCII letters, to catch encoding mistakes.
        let files: [(&str, &[u8]); 3] = [
            ("f1.json", b"abc"),
            ("f2.json", b"hello"),
            ("s p+\u{e9}\u{4e2d}.json", b"odd name"),
        ];
        let mut etags = Vec::new();
        for (name, body) in files {
            let path = self.path(&format!("l/{name}"));
            self.put(C, &path, body, &PutMode::CreateOnly)?;
            etags.push(self.get_body(C, &path, body)?);
        }
        self.put(C, &self.path("l/sub/g.json"), b"g", &PutMode::CreateOnly)?;
        let dir = self.path("l");
        let mut entries = self.list(C, &dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut expected: Vec<(String, bool, u64)> = files
            .iter()
            .map(|(name, body)| (name.to_string(), false, body.len() as u64))
            .chain([("sub".to_string(), true, 0)])
            .collect();
        expected.sort();
        let seen: Vec<(String, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.clone(), e.is_dir, if e.is_dir { 0 } else { e.size }))
            .collect();
        if seen != expected {
            return Err(self.fail(
                C,
                format!(
                    "list {dir}: expected [f1.json (3 B), f2.json (5 B), {} (8 B), sub/], got {}",
                    files[2].0,
                    show_names(&entries)
                ),
            ));
        }
        for entry in &entries {
            if let Some(i) = files.iter().position(|(name, _)| *name == entry.name)
                && let Some(etag) = &entry.etag
                && *etag != etags[i]
            {
                return Err(self.fail(
                    C,
                    format!(
                        "list {dir}: {} has the ETag '{etag}' but get gives '{}'",
                        entry.name, etags[i]
                    ),
                ));
            }
        }
        let top = self.list(C, &self.prefix)?;
        for (name, is_dir) in [("a.json", false), ("l", true), ("n1", true)] {
            if !top.iter().any(|e| e.name == name && e.is_dir == is_dir) {
                return Err(self.fail(
                    C,
                    format!(
                        "list {}: expected {name}{} among the entries, got {}",
                        self.prefix,
                        if is_dir { "/" } else { "" },
                        show_names(&top)
                    ),
                ));
            }
        }
        self.passed(C);

        const H: &str = "head";
        let f1 = self.path("l/f1.json");
        let info = self.ok(H, &format!("head {f1}"), self.remote.head(&f1))?;
        let good = info.as_ref().is_some_and(|i| {
            i.name == f1
                && i.size == 3
                && !i.is_dir
                && i.etag.as_ref().is_none_or(|e| *e == etags[0])
        });
        if !good {
            return Err(self.fail(
                H,
                format!(
                    "head {f1}: expected name '{f1}', 3 bytes, a file, ETag '{}' if any; got {info:?}",
                    etags[0]
                ),
            ));
        }
        if let Some(info) = self.ok(H, &format!("head {dir}"), self.remote.head(&dir))?
            && !info.is_dir
        {
            return Err(self.fail(H, format!("head {dir} (a folder): got a file: {info:?}")));
        }
        self.passed(H);
        Ok(())
    }

    pub(super) fn delete(&mut self) -> Check {
        const C: &str = "delete";
        let f1 = self.path("l/f1.json");
        self.ok(C, &format!("delete {f1}"), self.remote.delete(&f1))?;
        self.get_missing(C, &f1)?;
        if let Some(info) = self.ok(C, &format!("head {f1}"), self.remote.head(&f1))? {
            return Err(self.fail(
                C,
                format!("head {f1} after delete: expected None, got {info:?}"),
            ));
        }
        let dir = self.path("l");
        let entries = self.list(C, &dir)?;
        if entries.iter().any(|e| e.name == "f1.json") {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} after deleting f1.json: got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.ok(
            C,
            &format!("delete {f1} (missing)"),
            self.remote.delete(&f1),
        )?;
        self.ok(
            C,
            &format!("delete {dir} (a folder)"),
            self.remote.delete(&dir),
        )?;
        let entries = self.list(C, &dir)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {dir} after deleting it: expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.get_missing(C, &self.path("l/f2.json"))?;
        self.get_missing(C, &self.path("l/sub/g.json"))?;
        let top = self.list(C, &self.prefix)?;
        if top.iter().any(|e| e.name == "l") {
            return Err(self.fail(
                C,
                format!(
                    "list {} after deleting l/: got {}",
                    self.prefix,
                    show_names(&top)
                ),
            ));
        }
        let never = self.path("never-was/deep.json");
        self.ok(
            C,
            &format!("delete {never} (missing)"),
            self.remote.delete(&never),
        )?;
        self.passed(C);
        Ok(())
    }

    /// Runs `put` from `RACERS` threads at once; returns which succeeded (by index) and the
    /// first unexpected error.
    pub(super) fn race(
        &self,
        check: &'static str,
        path: &str,
        mode: &PutMode,
    ) -> Result<Vec<usize>, ConformanceFailure> {
        const RACERS: usize = 4;
        let barrier = Barrier::new(RACERS);
        let results: Vec<Result<Option<Etag>, RemoteError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..RACERS)
                .map(|i| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        self.remote.put(path, format!("racer {i}").as_bytes(), mode)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut winners = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(_) => winners.push(i),
                Err(e) if e.is_precondition_failed() => {}
                Err(e) => {
                    return Err(ConformanceFailure {
                        remote: self.report.remote.clone(),
                        check,
                        detail: format!("racing put {path} ({mode:?}), racer {i}: {e}"),
                        source: Some(e),
                    });
                }
            }
        }
        if winners.len() != 1 {
            return Err(self.fail(
                check,
                format!(
                    "{RACERS} racing puts of {path} ({mode:?}): expected exactly one winner, \
                     got {winners:?}"
                ),
            ));
        }
        let expected = format!("racer {}", winners[0]);
        self.get_body(check, path, expected.as_bytes())?;
        Ok(winners)
    }

    pub(super) fn race_create_only(&mut self) -> Check {
        const C: &str = "race-create-only";
        if self.caps.cas != CasClass::Atomic {
            self.skip(
                C,
                format!("cas is {}: racing writers may both win", self.caps.cas),
            );
            return Ok(());
        }
        self.race(C, &self.path("race-create.json"), &PutMode::CreateOnly)?;
        self.passed(C);
        Ok(())
    }

    pub(super) fn race_update_if_match(&mut self) -> Check {
        const C: &str = "race-update-if-match";
        if self.caps.cas != CasClass::Atomic {
            self.skip(
                C,
                format!("cas is {}: racing writers may both win", self.caps.cas),
            );
            return Ok(());
        }
        let path = self.path("race-update.json");
        let put = self.put(C, &path, b"base", &PutMode::CreateOnly)?;
        let etag = self.get_body(C, &path, b"base")?;
        self.same_etag(C, &path, put.as_ref(), &etag)?;
        self.race(C, &path, &PutMode::UpdateIfMatch(etag))?;
        self.passed(C);
        Ok(())
    }

    pub(super) fn cleanup(&mut self) -> Check {
        const C: &str = "cleanup";
        let prefix = self.prefix.clone();
        self.ok(C, &format!("delete {prefix}"), self.remote.delete(&prefix))?;
        let entries = self.list(C, &prefix)?;
        if !entries.is_empty() {
            return Err(self.fail(
                C,
                format!(
                    "list {prefix} after deleting it: expected [], got {}",
                    show_names(&entries)
                ),
            ));
        }
        self.get_missing(C, &self.path("a.json"))?;
        self.passed(C);
        Ok(())
    }
}
