"""Message ids the pages translate but no template or call names literally: words the code computes (states,
kinds, causes, codes without an English text in `web.i18n.CODES`). Listed here so that `pybabel extract`
keeps them in the catalogue; nothing imports this module at run time.

Better still, mark an id with `N_()` where the code defines the word; `scripts/i18n absorb-dict` appends here
the ids of an old dict catalogue it cannot place.
"""

from web.i18n import N_

IDS = (
    # absorbed from the VI dict by scripts/i18n absorb-dict
    N_('Equipment'),
    N_('Facilities'),
    N_('Language'),
    N_('approved'),
    N_('awaiting_outcome'),
    N_('case-file'),
    N_('closed'),
    N_('crash'),
    N_('device_lost'),
    N_('disposal'),
    N_('disposed'),
    N_('ended'),
    N_('enrolled'),
    N_('executed'),
    N_('final'),
    N_('held'),
    N_('investigating'),
    N_('investigator'),
    N_('judgment'),
    N_('no_policy'),
    N_('power'),
    N_('procuracy-file'),
    N_('proposed'),
    N_('prosecuted'),
    N_('recording'),
    N_('retained'),
    N_('retention_ended'),
    N_('stopped'),
    N_('this code was used already; wait for the next one'),
    N_("wrong code; check the phone's clock and scan the code again"),
)
