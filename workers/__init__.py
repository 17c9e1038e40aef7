"""Workers: the Celery app (and ``workers.celery`` for Celery's command line), the task guard, thin task
bodies over ``execution``, worker boot, the lost-chunk sweeper, and the embedded fleet of ``lepton up``."""
