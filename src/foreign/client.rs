//! `FieldReportClient`: the foreign face of [`crate::Client`].

use super::*;

/// The foreign handle on a [`crate::Client`].
pub struct FieldReportClient {
    inner: crate::Client,
}

impl FieldReportClient {
    pub(crate) fn new(config: Config) -> Result<Self> {
        Ok(FieldReportClient {
            inner: crate::Client::open(config.into_core()?)?,
        })
    }

    pub(crate) fn open_with_transport(
        config: Config,
        transport: Box<dyn HttpTransport>,
    ) -> Result<Self> {
        let mut core = config.into_core()?;
        core.transport = Some(Arc::new(TransportAdapter(transport)));
        Ok(FieldReportClient {
            inner: crate::Client::open(core)?,
        })
    }

    pub(crate) fn submit(&self, feedback: Feedback) -> Result<i64> {
        Ok(self.inner.submit(feedback.into_core()?)?)
    }

    pub(crate) fn submit_crash(&self, crash: CrashReport) -> Result<i64> {
        Ok(self.inner.submit_crash(crash.into_core()?)?)
    }

    pub(crate) fn submit_many(&self, reports: Vec<Submission>) -> Result<Vec<i64>> {
        Ok(self.inner.submit_many(batch_into_core(reports)?)?)
    }

    pub(crate) fn flush(&self, budget: Duration) -> Result<FlushResult> {
        Ok(self.inner.flush(budget)?.into())
    }

    pub(crate) fn report(&self, id: i64) -> Result<ReportStatus> {
        Ok(self.inner.report(id)?.into())
    }

    pub(crate) fn reports(&self, filter: ReportFilter) -> Result<Vec<ReportStatus>> {
        let list = self.inner.reports(&filter.into())?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        Ok(self.inner.stats()?.into())
    }

    pub(crate) fn retry(&self, id: i64) -> Result<()> {
        Ok(self.inner.retry(id)?)
    }

    pub(crate) fn purge(&self, id: i64) -> Result<()> {
        Ok(self.inner.purge(id)?)
    }

    pub(crate) fn purge_all(&self) -> Result<()> {
        Ok(self.inner.purge_all()?)
    }

    pub(crate) fn set_consent(&self, granted: bool) -> Result<()> {
        Ok(self.inner.set_consent(granted)?)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.inner.set_online(online);
    }

    pub(crate) fn set_metered(&self, metered: bool) {
        self.inner.set_metered(metered);
    }

    pub(crate) fn set_api_key(&self, api_key: String) -> Result<()> {
        Ok(self.inner.set_api_key(&api_key)?)
    }

    pub(crate) fn set_listener(&self, listener: Option<Box<dyn DeliveryListener>>) {
        self.inner.set_listener(
            listener.map(|l| Arc::new(ListenerAdapter::new(l)) as Arc<dyn core_report::Listener>),
        );
    }

    pub(crate) fn start_sender(&self) -> Result<()> {
        Ok(self.inner.start_sender()?)
    }

    pub(crate) fn stop_sender(&self) {
        self.inner.stop_sender();
    }

    pub(crate) fn close(&self) {
        self.inner.close();
    }

    pub(crate) fn moved_aside(&self) -> Option<String> {
        self.inner
            .moved_aside()
            .map(|p| p.to_string_lossy().into_owned())
    }
}
