//! `infra lsp`: the compiler's diagnostics, hover, definitions, references,
//! completion, outline, formatting and rename for an editor, over the Language
//! Server Protocol (stdio, [`lsp_server`]). Entry point: [`serve`].
//!
//! Diagnostics come from the same driver as `infra check`: [`crate::check`] on a
//! check thread (published at once), then [`crate::Checked::render`] and the
//! secrets audit on a render thread at a lower priority (published again, then
//! `infra/checked`), over the editor's unsaved texts ([`project::Overlay`]) for
//! the document's configuration directory ([`project::root_of`]): every file of
//! it gets its list, so an error in an imported file shows there and a fixed one
//! disappears. At most one check runs; a result whose texts changed meanwhile is
//! dropped, not published, and the newest texts are checked next (typing never
//! queues stale work). Everything else is answered at once on the main thread
//! from [`index::Index`], built from the parsed files (it works on a file with
//! syntax errors). docs/editors.md.

pub mod docs;
pub mod features;
pub mod index;
pub mod project;
pub mod text;

use crate::diag::{Diag, Severity};
use crate::source::{FileId, SourceMap, Span};
use crossbeam_channel::{select, unbounded, Receiver, Sender};
use features::{Completion, ItemKind, Symbol, SymbolKind};
use index::Index;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lt;
use project::{Overlay, StdFiles};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use text::{Encoding, LineIndex};

/// What the CLI passes in.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where the standard library's files are written for "go to definition"
    /// (`$XDG_CACHE_HOME/infra`); `None`: not offered.
    pub cache: Option<PathBuf>,
}

/// Serve one client on `conn` until it sends `exit`. `Err` when the protocol
/// broke (the client went away without `shutdown`, or sent what is not LSP).
pub fn serve(conn: Connection, opts: Options) -> Result<(), String> {
    // lsp_server's errors quote the whole message: a document's text, say
    let short = |e: lsp_server::ProtocolError| {
        let s = e.to_string();
        match s.char_indices().nth(300) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s,
        }
    };
    let (id, params) = conn.initialize_start().map_err(short)?;
    let init: lt::InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let utf8 = init
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref())
        .is_some_and(|v| v.contains(&lt::PositionEncodingKind::UTF8));
    let enc = if utf8 {
        Encoding::Utf8
    } else {
        Encoding::Utf16
    };
    let caps = lt::ServerCapabilities {
        position_encoding: Some(if utf8 {
            lt::PositionEncodingKind::UTF8
        } else {
            lt::PositionEncodingKind::UTF16
        }),
        text_document_sync: Some(lt::TextDocumentSyncCapability::Kind(
            lt::TextDocumentSyncKind::FULL,
        )),
        hover_provider: Some(lt::HoverProviderCapability::Simple(true)),
        definition_provider: Some(lt::OneOf::Left(true)),
        references_provider: Some(lt::OneOf::Left(true)),
        document_symbol_provider: Some(lt::OneOf::Left(true)),
        document_formatting_provider: Some(lt::OneOf::Left(true)),
        rename_provider: Some(lt::OneOf::Right(lt::RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        completion_provider: Some(lt::CompletionOptions {
            trigger_characters: Some(vec![".".into(), "\"".into(), "{".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let result = serde_json::json!({
        "capabilities": caps,
        "serverInfo": { "name": "infra", "version": env!("CARGO_PKG_VERSION") },
    });
    conn.initialize_finish(id, result).map_err(short)?;
    let (job_tx, job_rx) = unbounded::<Job>();
    let (render_tx, render_rx) = unbounded::<RenderJob>();
    let (done_tx, done_rx) = unbounded::<Checked>();
    let done2 = done_tx.clone();
    let worker = std::thread::Builder::new()
        .name("infra-lsp-check".into())
        .spawn(move || work(job_rx, render_tx, done_tx))
        .map_err(|e| format!("cannot start the check thread: {e}"))?;
    let renderer = std::thread::Builder::new()
        .name("infra-lsp-render".into())
        .spawn(move || render_work(render_rx, done2))
        .map_err(|e| format!("cannot start the render thread: {e}"))?;
    let mut s = Server {
        out: conn.sender.clone(),
        enc,
        docs: HashMap::new(),
        roots: BTreeMap::new(),
        text_docs: docs::Docs::load(),
        std: StdFiles::new(opts.cache),
        std_index: HashMap::new(),
        jobs: job_tx,
        busy: None,
        shutdown: false,
    };
    let r = s.run(&conn.receiver, &done_rx);
    drop(s);
    let _ = worker.join();
    let _ = renderer.join();
    r
}

struct Doc {
    text: String,
    version: i32,
    root: PathBuf,
}

#[derive(Default)]
struct Root {
    /// Bumped by every change of a file of it.
    gen: u64,
    /// The newest generation given to the check thread.
    started: u64,
    /// Files given diagnostics last time (to clear the ones now clean).
    published: BTreeSet<PathBuf>,
    index: Option<Rc<Index>>,
}

struct Server {
    out: Sender<Message>,
    enc: Encoding,
    docs: HashMap<PathBuf, Doc>,
    roots: BTreeMap<PathBuf, Root>,
    text_docs: docs::Docs,
    std: StdFiles,
    std_index: HashMap<String, Rc<Index>>,
    jobs: Sender<Job>,
    /// The check running: its root and generation.
    busy: Option<(PathBuf, u64)>,
    shutdown: bool,
}

/// A check to run: a root over a snapshot of the open texts.
struct Job {
    root: PathBuf,
    gen: u64,
    overlay: Overlay,
    /// Where a diagnostic without a place is shown.
    anchor: PathBuf,
    enc: Encoding,
    std: StdFiles,
    /// The open documents of the root and their versions, as checked.
    versions: BTreeMap<PathBuf, i32>,
}

/// A check's outcome: every file of the root with its diagnostics.
struct Checked {
    root: PathBuf,
    gen: u64,
    versions: BTreeMap<PathBuf, i32>,
    files: BTreeMap<PathBuf, Vec<lt::Diagnostic>>,
    /// All of `infra check` (render and the secrets audit included); else the
    /// front end's (resolve, lint, graph), the render following.
    complete: bool,
    /// From the check thread (which is free again), not the render thread.
    from_check: bool,
}

/// The front end passed: render it (and audit the secrets) on the render thread.
struct RenderJob {
    job: Job,
    checked: crate::Checked,
}

fn panic_files(
    job: &Job,
    p: Box<dyn std::any::Any + Send>,
) -> BTreeMap<PathBuf, Vec<lt::Diagnostic>> {
    let why = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let mut m = BTreeMap::new();
    m.insert(
        job.anchor.clone(),
        vec![lt::Diagnostic {
            severity: Some(lt::DiagnosticSeverity::ERROR),
            source: Some("infra".into()),
            message: format!("infra's check panicked (a bug in infra, please report it): {why}"),
            ..Default::default()
        }],
    );
    m
}

/// The check thread: [`crate::check`] (resolve, lint, graph: milliseconds even
/// for 1,000 hosts), its diagnostics at once; a configuration that passed goes
/// on to the render thread, so a long render never delays the next check.
fn work(jobs: Receiver<Job>, renders: Sender<RenderJob>, done: Sender<Checked>) {
    while let Ok(job) = jobs.recv() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::check(&job.root, &job.overlay)
        }));
        let (files, next) = match r {
            Ok(Ok(checked)) => (
                files_of(&job, &checked.model.sources, &checked.diags),
                Some(checked),
            ),
            Ok(Err(f)) => {
                let mut d = f.warnings;
                d.extend(f.diags);
                crate::diag::sort(&mut d);
                (files_of(&job, &f.sources, &d), None)
            }
            Err(p) => (panic_files(&job, p), None),
        };
        let out = Checked {
            root: job.root.clone(),
            gen: job.gen,
            versions: job.versions.clone(),
            files,
            complete: next.is_none(),
            from_check: true,
        };
        if done.send(out).is_err() {
            return;
        }
        if let Some(checked) = next {
            if renders.send(RenderJob { job, checked }).is_err() {
                return;
            }
        }
    }
}

/// The render thread: the rest of `infra check` for the newest configuration
/// that passed the front end (older ones waiting are skipped: stale).
fn render_work(jobs: Receiver<RenderJob>, done: Sender<Checked>) {
    // below the editor's requests and the front end's check: a 1,000-host render
    // takes a core for a quarter of a second, and answers must not wait for it
    // (Linux: a thread has its own nice value)
    // SAFETY: setpriority on this thread's own id; no memory is shared.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
    while let Ok(mut j) = jobs.recv() {
        while let Ok(newer) = jobs.try_recv() {
            j = newer;
        }
        let RenderJob { job, checked } = j;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // as compile() and check_all(): render's errors after the front end's
            // warnings; the secrets audit only for a configuration that rendered
            let mut diags = checked.diags.clone();
            match checked.render(&job.overlay) {
                Ok(_) => diags.extend(crate::secrets::audit(&checked.root_dir, &checked.model)),
                Err(d) => {
                    diags.extend(d);
                    crate::diag::sort(&mut diags);
                }
            }
            files_of(&job, &checked.model.sources, &diags)
        }));
        let files = r.unwrap_or_else(|p| panic_files(&job, p));
        let out = Checked {
            root: job.root,
            gen: job.gen,
            versions: job.versions,
            files,
            complete: true,
            from_check: false,
        };
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Diagnostics per file: every user file of the sources gets a list (empty ones
/// clear what was shown); one without a place in them goes to the anchor.
fn files_of(
    job: &Job,
    sources: &SourceMap,
    diags: &[Diag],
) -> BTreeMap<PathBuf, Vec<lt::Diagnostic>> {
    let mut files: BTreeMap<PathBuf, Vec<lt::Diagnostic>> = BTreeMap::new();
    let mut lines: HashMap<FileId, LineIndex> = HashMap::new();
    for (_, f) in sources.files() {
        if !f.name.starts_with("std/") {
            files.entry(PathBuf::from(&f.name)).or_default();
        }
    }
    files.entry(job.anchor.clone()).or_default();
    let conv = Conv {
        sources,
        enc: job.enc,
        std: &job.std,
    };
    for d in diags {
        let (path, range) = match d
            .primary
            .as_ref()
            .and_then(|l| conv.place(l.span, &mut lines))
        {
            Some((p, r)) if files.contains_key(&p) => (p, r),
            _ => (job.anchor.clone(), lt::Range::default()),
        };
        files
            .entry(path)
            .or_default()
            .push(conv.diagnostic(d, range, &mut lines));
    }
    files
}

/// Spans → the client's places.
struct Conv<'a> {
    sources: &'a SourceMap,
    enc: Encoding,
    std: &'a StdFiles,
}

impl Conv<'_> {
    fn path(&self, file: FileId) -> Option<PathBuf> {
        let name = &self.sources.get(file).name;
        if name.starts_with("std/") {
            self.std.path(name)
        } else {
            Some(PathBuf::from(name))
        }
    }

    fn place(
        &self,
        span: Span,
        lines: &mut HashMap<FileId, LineIndex>,
    ) -> Option<(PathBuf, lt::Range)> {
        let path = self.path(span.file)?;
        let text = &self.sources.get(span.file).text;
        let li = lines
            .entry(span.file)
            .or_insert_with(|| LineIndex::new(text));
        Some((
            path,
            li.range(text, span.start as usize, span.end as usize, self.enc),
        ))
    }

    fn location(&self, span: Span, lines: &mut HashMap<FileId, LineIndex>) -> Option<lt::Location> {
        let (p, range) = self.place(span, lines)?;
        Some(lt::Location {
            uri: lt::Url::from_file_path(&p).ok()?,
            range,
        })
    }

    fn diagnostic(
        &self,
        d: &Diag,
        range: lt::Range,
        lines: &mut HashMap<FileId, LineIndex>,
    ) -> lt::Diagnostic {
        let mut message = d.message.clone();
        if let Some(l) = &d.primary {
            if !l.text.is_empty() {
                message.push_str(&format!("\n{}", l.text));
            }
        }
        if let Some(h) = &d.help {
            message.push_str(&format!("\nhelp: {h}"));
        }
        let related: Vec<lt::DiagnosticRelatedInformation> = d
            .secondary
            .iter()
            .filter_map(|l| {
                Some(lt::DiagnosticRelatedInformation {
                    location: self.location(l.span, lines)?,
                    message: l.text.clone(),
                })
            })
            .collect();
        lt::Diagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => lt::DiagnosticSeverity::ERROR,
                Severity::Warning => lt::DiagnosticSeverity::WARNING,
            }),
            code: Some(lt::NumberOrString::String(d.code.to_string())),
            source: Some("infra".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..Default::default()
        }
    }
}

fn path_of(uri: &lt::Url) -> Option<PathBuf> {
    if uri.scheme() != "file" {
        return None;
    }
    uri.to_file_path()
        .ok()
        .map(|p| crate::resolve::load::normalize(&p))
}

fn params<P: serde::de::DeserializeOwned>(req: &Request) -> Result<P, Response> {
    serde_json::from_value(req.params.clone()).map_err(|e| {
        Response::new_err(
            req.id.clone(),
            ErrorCode::InvalidParams as i32,
            e.to_string(),
        )
    })
}

impl Server {
    fn run(&mut self, input: &Receiver<Message>, done: &Receiver<Checked>) -> Result<(), String> {
        loop {
            select! {
                recv(input) -> msg => {
                    let Ok(first) = msg else {
                        return Err("the client closed the connection without `exit`".into());
                    };
                    // everything already waiting, so a burst of keystrokes is one check
                    let mut batch = vec![first];
                    while let Ok(m) = input.try_recv() {
                        batch.push(m);
                    }
                    if self.handle_batch(batch) {
                        return Ok(());
                    }
                }
                recv(done) -> c => {
                    if let Ok(c) = c {
                        self.finished(c);
                    }
                }
            }
            self.schedule();
        }
    }

    fn send(&self, m: impl Into<Message>) {
        let _ = self.out.send(m.into());
    }

    /// True on `exit`.
    fn handle_batch(&mut self, batch: Vec<Message>) -> bool {
        let cancelled: BTreeSet<RequestId> = batch
            .iter()
            .filter_map(|m| match m {
                Message::Notification(n) if n.method == "$/cancelRequest" => {
                    serde_json::from_value::<lt::CancelParams>(n.params.clone())
                        .ok()
                        .map(|p| match p.id {
                            lt::NumberOrString::Number(n) => RequestId::from(n),
                            lt::NumberOrString::String(s) => RequestId::from(s),
                        })
                }
                _ => None,
            })
            .collect();
        for m in batch {
            match m {
                Message::Request(r) => {
                    if cancelled.contains(&r.id) {
                        self.send(Response::new_err(
                            r.id,
                            ErrorCode::RequestCanceled as i32,
                            "cancelled".into(),
                        ));
                        continue;
                    }
                    // a bug answering one request is that request's error, not the
                    // end of the editor's session
                    let (id, method) = (r.id.clone(), r.method.clone());
                    let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.request(r)
                    }))
                    .unwrap_or_else(|_| {
                        Response::new_err(
                            id,
                            ErrorCode::InternalError as i32,
                            format!("infra lsp panicked answering {method} (a bug in infra, please report it)"),
                        )
                    });
                    self.send(resp);
                }
                Message::Notification(n) => {
                    if n.method == "exit" {
                        return true;
                    }
                    self.notification(n);
                }
                Message::Response(_) => {}
            }
        }
        false
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            "textDocument/didOpen" => {
                if let Ok(p) = serde_json::from_value::<lt::DidOpenTextDocumentParams>(n.params) {
                    if let Some(path) = path_of(&p.text_document.uri) {
                        self.open(path, p.text_document.text, p.text_document.version);
                    }
                }
            }
            "textDocument/didChange" => {
                if let Ok(p) = serde_json::from_value::<lt::DidChangeTextDocumentParams>(n.params) {
                    let Some(path) = path_of(&p.text_document.uri) else {
                        return;
                    };
                    // full sync: the last change holds the whole text
                    if let Some(c) = p.content_changes.into_iter().last() {
                        if let Some(d) = self.docs.get_mut(&path) {
                            d.text = c.text;
                            d.version = p.text_document.version;
                            let root = d.root.clone();
                            self.touch(&root);
                        }
                    }
                }
            }
            "textDocument/didClose" => {
                if let Ok(p) = serde_json::from_value::<lt::DidCloseTextDocumentParams>(n.params) {
                    if let Some(path) = path_of(&p.text_document.uri) {
                        if let Some(d) = self.docs.remove(&path) {
                            // what is on disk now counts
                            self.touch(&d.root);
                        }
                    }
                }
            }
            "textDocument/didSave" => {}
            _ => {}
        }
    }

    fn open(&mut self, path: PathBuf, text: String, version: i32) {
        let root = if self.std.name(&path).is_some() {
            // the stdlib's files are read, never checked as a configuration
            PathBuf::new()
        } else {
            let mut o = self.overlay();
            o.open.insert(path.clone(), text.clone());
            project::root_of(&path, &o)
        };
        self.docs.insert(
            path,
            Doc {
                text,
                version,
                root: root.clone(),
            },
        );
        if !root.as_os_str().is_empty() {
            self.roots.entry(root.clone()).or_default();
            self.touch(&root);
        }
    }

    fn touch(&mut self, root: &Path) {
        if let Some(r) = self.roots.get_mut(root) {
            r.gen += 1;
            r.index = None;
        }
    }

    fn overlay(&self) -> Overlay {
        Overlay {
            open: self
                .docs
                .iter()
                .map(|(p, d)| (p.clone(), d.text.clone()))
                .collect(),
        }
    }

    /// Start the next check when none runs: the first root whose texts changed.
    fn schedule(&mut self) {
        if self.busy.is_some() || self.shutdown {
            return;
        }
        let Some((root, gen)) = self
            .roots
            .iter()
            .find(|(_, r)| r.gen > r.started)
            .map(|(p, r)| (p.clone(), r.gen))
        else {
            return;
        };
        let anchor = self
            .docs
            .iter()
            .filter(|(_, d)| d.root == root)
            .map(|(p, _)| p.clone())
            .min()
            .unwrap_or_else(|| root.join("main.infra"));
        let versions = self
            .docs
            .iter()
            .filter(|(_, d)| d.root == root)
            .map(|(p, d)| (p.clone(), d.version))
            .collect();
        let job = Job {
            root: root.clone(),
            gen,
            overlay: self.overlay(),
            anchor,
            versions,
            enc: self.enc,
            std: self.std.clone(),
        };
        if self.jobs.send(job).is_ok() {
            if let Some(r) = self.roots.get_mut(&root) {
                r.started = gen;
            }
            self.busy = Some((root, gen));
        }
    }

    fn finished(&mut self, c: Checked) {
        if c.from_check {
            self.busy = None;
        }
        let Some(r) = self.roots.get_mut(&c.root) else {
            return;
        };
        if c.gen != r.gen {
            // the texts changed while it ran: stale, the newest is checked next
            return;
        }
        let before = std::mem::take(&mut r.published);
        r.published = c.files.keys().cloned().collect();
        let mut out = Vec::new();
        for p in before.difference(&r.published) {
            out.push((p.clone(), Vec::new()));
        }
        out.extend(c.files);
        for (path, diagnostics) in out {
            let Ok(uri) = lt::Url::from_file_path(&path) else {
                continue;
            };
            let version = self.docs.get(&path).map(|d| d.version);
            self.send(Notification::new(
                "textDocument/publishDiagnostics".into(),
                lt::PublishDiagnosticsParams {
                    uri,
                    diagnostics,
                    version,
                },
            ));
        }
        if !c.complete {
            return;
        }
        // after every file's list of the whole check: which texts it was run on
        // (for a client or a test that waits for the check of what it sent last)
        let versions: Vec<serde_json::Value> = c
            .versions
            .iter()
            .filter_map(|(p, v)| {
                Some(serde_json::json!({"uri": lt::Url::from_file_path(p).ok()?, "version": v}))
            })
            .collect();
        self.send(Notification::new(
            "infra/checked".into(),
            serde_json::json!({
                "root": lt::Url::from_file_path(&c.root).ok(),
                "documents": versions,
            }),
        ));
    }

    /// The index for a document, and the document's file in it.
    fn index_for(&mut self, path: &Path) -> Option<(Rc<Index>, FileId)> {
        if let Some(std_name) = self.std.name(path) {
            let ix = self.std_index.entry(std_name.clone()).or_insert_with(|| {
                let mut l = crate::resolve::MemLoader::default();
                l.files.insert(
                    PathBuf::from("/infra-std-view/main.infra"),
                    format!("import \"{std_name}\"\n").into_bytes(),
                );
                let loaded =
                    crate::resolve::load::load(Path::new("/infra-std-view/main.infra"), &l);
                Rc::new(Index::build(loaded.sources, loaded.files))
            });
            let f = ix.sources.find(&std_name)?;
            return Some((ix.clone(), f));
        }
        let root = self.docs.get(path)?.root.clone();
        let built = self.roots.get(&root).and_then(|r| r.index.clone());
        let ix = match built {
            Some(ix) => ix,
            None => {
                let loaded = crate::resolve::load::load(&root, &self.overlay());
                let ix = Rc::new(Index::build(loaded.sources, loaded.files));
                if let Some(r) = self.roots.get_mut(&root) {
                    r.index = Some(ix.clone());
                }
                ix
            }
        };
        let f = ix.sources.find(&path.display().to_string())?;
        Some((ix, f))
    }

    fn conv<'a>(&'a self, ix: &'a Index) -> Conv<'a> {
        Conv {
            sources: &ix.sources,
            enc: self.enc,
            std: &self.std,
        }
    }

    /// The document's index, its file in it and the byte offset of a position.
    fn at(&mut self, tdp: &lt::TextDocumentPositionParams) -> Option<(Rc<Index>, FileId, usize)> {
        let path = path_of(&tdp.text_document.uri)?;
        let (ix, f) = self.index_for(&path)?;
        let text = &ix.sources.get(f).text;
        let o = LineIndex::new(text).offset(text, tdp.position, self.enc);
        Some((ix, f, o))
    }

    /// The index and the site at a position (definition, references).
    fn site(&mut self, tdp: &lt::TextDocumentPositionParams) -> Option<(Rc<Index>, index::Site)> {
        let (ix, f, o) = self.at(tdp)?;
        let site = ix.site_at(f, o)?.clone();
        Some((ix, site))
    }

    fn request(&mut self, req: Request) -> Response {
        if self.shutdown {
            return Response::new_err(
                req.id,
                ErrorCode::InvalidRequest as i32,
                "shutting down".into(),
            );
        }
        let id = req.id.clone();
        let r = match req.method.as_str() {
            "shutdown" => {
                self.shutdown = true;
                Ok(serde_json::Value::Null)
            }
            "textDocument/hover" => self.hover(&req),
            "textDocument/definition" => self.definition(&req),
            "textDocument/references" => self.references(&req),
            "textDocument/completion" => self.completion(&req),
            "textDocument/documentSymbol" => self.symbols(&req),
            "textDocument/formatting" => self.formatting(&req),
            "textDocument/prepareRename" => self.prepare_rename(&req),
            "textDocument/rename" => self.rename(&req),
            m => Err(Response::new_err(
                id.clone(),
                ErrorCode::MethodNotFound as i32,
                format!("infra lsp does not answer {m}"),
            )),
        };
        match r {
            Ok(v) => Response::new_ok(id, v),
            Err(e) => e,
        }
    }

    fn hover(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::HoverParams = params(req)?;
        let Some((ix, f, o)) = self.at(&p.text_document_position_params) else {
            return Ok(serde_json::Value::Null);
        };
        let Some((md, span)) = features::hover(&ix, &self.text_docs, f, o) else {
            return Ok(serde_json::Value::Null);
        };
        let mut lines = HashMap::new();
        let range = self.conv(&ix).place(span, &mut lines).map(|(_, r)| r);
        Ok(serde_json::to_value(lt::Hover {
            contents: lt::HoverContents::Markup(lt::MarkupContent {
                kind: lt::MarkupKind::Markdown,
                value: md,
            }),
            range,
        })
        .unwrap_or_default())
    }

    fn definition(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::GotoDefinitionParams = params(req)?;
        let Some((ix, site)) = self.site(&p.text_document_position_params) else {
            return Ok(serde_json::Value::Null);
        };
        let span = match &site.what {
            index::What::Import(Some(target)) => Some(Span::new(*target, 0, 0)),
            w => ix.def_of(w).map(|d| ix.defs[d].span),
        };
        let mut lines = HashMap::new();
        let loc = span.and_then(|s| self.conv(&ix).location(s, &mut lines));
        Ok(serde_json::to_value(loc).unwrap_or_default())
    }

    fn references(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::ReferenceParams = params(req)?;
        let Some((ix, site)) = self.site(&p.text_document_position) else {
            return Ok(serde_json::Value::Null);
        };
        let spans = match &site.what {
            // an import: every import of the same file
            index::What::Import(Some(target)) => ix.importers(*target),
            w => {
                let Some(d) = ix.def_of(w) else {
                    return Ok(serde_json::Value::Null);
                };
                let mut spans = ix.references(d);
                if !p.context.include_declaration {
                    spans.remove(0);
                }
                spans
            }
        };
        let mut lines = HashMap::new();
        let conv = self.conv(&ix);
        let locs: Vec<lt::Location> = spans
            .into_iter()
            .filter_map(|s| conv.location(s, &mut lines))
            .collect();
        Ok(serde_json::to_value(locs).unwrap_or_default())
    }

    fn completion(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::CompletionParams = params(req)?;
        let Some((ix, f, o)) = self.at(&p.text_document_position) else {
            return Ok(serde_json::Value::Null);
        };
        let text = ix.sources.get(f).text.clone();
        let items: Vec<lt::CompletionItem> = features::complete(&ix, &self.text_docs, f, &text, o)
            .into_iter()
            .map(completion_item)
            .collect();
        Ok(serde_json::to_value(lt::CompletionResponse::Array(items)).unwrap_or_default())
    }

    fn symbols(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::DocumentSymbolParams = params(req)?;
        let Some(path) = path_of(&p.text_document.uri) else {
            return Ok(serde_json::Value::Null);
        };
        let Some((ix, f)) = self.index_for(&path) else {
            return Ok(serde_json::Value::Null);
        };
        let Some((_, file)) = ix.files.iter().find(|(id, _)| *id == f) else {
            return Ok(serde_json::Value::Null);
        };
        let text = &ix.sources.get(f).text;
        let li = LineIndex::new(text);
        let syms: Vec<lt::DocumentSymbol> = features::symbols(file)
            .into_iter()
            .map(|s| doc_symbol(s, text, &li, self.enc))
            .collect();
        Ok(serde_json::to_value(lt::DocumentSymbolResponse::Nested(syms)).unwrap_or_default())
    }

    fn formatting(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::DocumentFormattingParams = params(req)?;
        let Some(path) = path_of(&p.text_document.uri) else {
            return Ok(serde_json::Value::Null);
        };
        let Some(doc) = self.docs.get(&path) else {
            return Ok(serde_json::Value::Null);
        };
        match crate::fmt::format_source(FileId(0), &doc.text) {
            Ok(new) if new == doc.text => Ok(serde_json::json!([])),
            Ok(new) => {
                let li = LineIndex::new(&doc.text);
                let range = li.range(&doc.text, 0, doc.text.len(), self.enc);
                Ok(serde_json::to_value(vec![lt::TextEdit {
                    range,
                    new_text: new,
                }])
                .unwrap_or_default())
            }
            Err(d) => Err(Response::new_err(
                req.id.clone(),
                ErrorCode::RequestFailed as i32,
                format!(
                    "not formatted: the file has {} syntax error{} (fix {} first)",
                    d.len(),
                    if d.len() == 1 { "" } else { "s" },
                    if d.len() == 1 { "it" } else { "them" }
                ),
            )),
        }
    }

    fn prepare_rename(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::TextDocumentPositionParams = params(req)?;
        let Some((ix, f, o)) = self.at(&p) else {
            return Ok(serde_json::Value::Null);
        };
        match features::renamable(&ix, f, o) {
            Ok(_) => {
                let span = ix.site_at(f, o).map(|s| s.span).unwrap_or_default();
                let mut lines = HashMap::new();
                let r = self.conv(&ix).place(span, &mut lines).map(|(_, r)| r);
                Ok(serde_json::to_value(r).unwrap_or_default())
            }
            Err(why) => Err(Response::new_err(
                req.id.clone(),
                ErrorCode::RequestFailed as i32,
                why,
            )),
        }
    }

    fn rename(&mut self, req: &Request) -> Result<serde_json::Value, Response> {
        let p: lt::RenameParams = params(req)?;
        let Some((ix, f, o)) = self.at(&p.text_document_position) else {
            return Ok(serde_json::Value::Null);
        };
        let spans = features::rename(&ix, f, o, &p.new_name).map_err(|why| {
            Response::new_err(req.id.clone(), ErrorCode::RequestFailed as i32, why)
        })?;
        let mut changes: HashMap<lt::Url, Vec<lt::TextEdit>> = HashMap::new();
        let mut lines = HashMap::new();
        let conv = self.conv(&ix);
        for s in spans {
            if let Some(loc) = conv.location(s, &mut lines) {
                changes.entry(loc.uri).or_default().push(lt::TextEdit {
                    range: loc.range,
                    new_text: p.new_name.clone(),
                });
            }
        }
        Ok(serde_json::to_value(lt::WorkspaceEdit {
            changes: Some(changes),
            ..Default::default()
        })
        .unwrap_or_default())
    }
}

fn completion_item(c: Completion) -> lt::CompletionItem {
    lt::CompletionItem {
        label: c.label,
        kind: Some(match c.kind {
            ItemKind::Keyword => lt::CompletionItemKind::KEYWORD,
            ItemKind::Kind => lt::CompletionItemKind::CLASS,
            ItemKind::Attribute => lt::CompletionItemKind::PROPERTY,
            ItemKind::Host => lt::CompletionItemKind::VARIABLE,
            ItemKind::Group => lt::CompletionItemKind::VARIABLE,
            ItemKind::Instance => lt::CompletionItemKind::REFERENCE,
            ItemKind::Field => lt::CompletionItemKind::FIELD,
            ItemKind::Module => lt::CompletionItemKind::MODULE,
            ItemKind::Value => lt::CompletionItemKind::VALUE,
            ItemKind::Resource => lt::CompletionItemKind::STRUCT,
        }),
        detail: (!c.detail.is_empty()).then_some(c.detail),
        insert_text: c.insert,
        ..Default::default()
    }
}

#[allow(deprecated)] // DocumentSymbol::deprecated must be written out
fn doc_symbol(s: Symbol, text: &str, li: &LineIndex, enc: Encoding) -> lt::DocumentSymbol {
    let range = li.range(text, s.full.start as usize, s.full.end as usize, enc);
    let mut sel = li.range(
        text,
        s.name_span.start as usize,
        s.name_span.end as usize,
        enc,
    );
    // the selection must lie inside the range
    if sel.start < range.start || sel.end > range.end {
        sel = range;
    }
    lt::DocumentSymbol {
        name: if s.name.is_empty() {
            "?".into()
        } else {
            s.name
        },
        detail: (!s.detail.is_empty()).then_some(s.detail),
        kind: match s.kind {
            SymbolKind::Host => lt::SymbolKind::OBJECT,
            SymbolKind::Group => lt::SymbolKind::NAMESPACE,
            SymbolKind::Admin => lt::SymbolKind::KEY,
            SymbolKind::Instance => lt::SymbolKind::OBJECT,
            SymbolKind::Kind => lt::SymbolKind::CLASS,
            SymbolKind::Param => lt::SymbolKind::TYPE_PARAMETER,
            SymbolKind::Let => lt::SymbolKind::CONSTANT,
            SymbolKind::Import => lt::SymbolKind::MODULE,
            SymbolKind::Attr => lt::SymbolKind::PROPERTY,
            SymbolKind::Block => lt::SymbolKind::STRUCT,
        },
        tags: None,
        deprecated: None,
        range,
        selection_range: sel,
        children: (!s.children.is_empty()).then(|| {
            s.children
                .into_iter()
                .map(|c| doc_symbol(c, text, li, enc))
                .collect()
        }),
    }
}
