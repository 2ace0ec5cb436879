"""Every leaf field of the configuration model drives behaviour, and a test shows it.

``PROOF`` maps each leaf of ``callcenter.config.model.Config`` (a path as ops write it: ``*``
for a mapping's entries, ``[]`` for a list's items, ``<Node>`` for one kind of IVR node) to the
test that fails when the field stops acting. A field added to the model without an entry here,
an entry for a field that no longer exists, or an entry naming a test that does not exist fails
this test: no inert key can land, and no key is dropped without the table saying so.

Rendered settings are proved by the golden render of the example center (``test_golden``
compares every rendered file with its reviewed copy, and the example sets them). Secrets are
leaves: their value is what acts."""

# ruff: noqa: E501 - the table keeps one line per field, whatever its test is called

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import re
import types
import typing
from pathlib import Path

from callcenter.config import model as m
from tests.centers import REPO

RENDER = "tests/config/test_config_render.py::test_golden"
PHONES = "tests/config/test_config_phones.py::test_the_example_renders_dtmf_rtp_timeouts_and_session_timers_on_every_endpoint"
IVR = "tests/inbound/test_ivr_core.py"
ACD = "tests/acd/test_acd.py"
ROUTING = "tests/acd/test_routing.py"
DIALER = "tests/outbound/test_dialer_service.py"
DIALER_CORE = "tests/outbound/test_dialer_core.py"
FEATURES = "tests/acd/test_acd.py::test_feature_codes_login_pause_unpause_logout"
SPY = "tests/supervision/test_monitor_sim.py::test_each_mode_spies_on_the_agents_call"
ASK = "tests/supervision/test_monitor.py::test_ask_mode_menu"
NODE = "flows.*.nodes.*"
CALLBACKS = "tests/acd/test_callback_offer.py::test_callbacks_obey_the_window_the_retry_policy_and_the_do_not_call_list"

PROOF: dict[str, str] = {
    # the center
    "center.name": RENDER,
    "center.timezone": f"{IVR}::test_hours_in_the_centers_timezone_across_dst",
    "center.hours": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    "center.holidays[].date": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    "center.holidays[].name": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    "center.holidays[].hours[].start": f"{IVR}::test_hours_in_the_centers_timezone_across_dst",
    "center.holidays[].hours[].end": f"{IVR}::test_hours_in_the_centers_timezone_across_dst",
    "center.languages": f"{IVR}::test_language_choice_switches_prompts_and_sets_the_channel",
    "center.country": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    # the links to Asterisk
    "asterisk.ami.host": "tests/config/test_config_apply.py::test_apply_reloads_every_module_over_ami",
    "asterisk.ami.port": "tests/config/test_config_apply.py::test_apply_reloads_every_module_over_ami",
    "asterisk.ami.username": RENDER,
    "asterisk.ami.secret": "tests/config/test_config_apply.py::test_apply_reloads_every_module_over_ami",
    "asterisk.ami.connect_timeout": "tests/app/test_reload.py::test_the_controller_takes_its_ami_settings",
    "asterisk.ami.action_timeout": "tests/app/test_reload.py::test_the_controller_takes_its_ami_settings",
    "asterisk.ami.ping_interval": "tests/app/test_reload.py::test_the_controller_takes_its_ami_settings",
    "asterisk.ami_apply.username": "tests/config/test_config_apply.py::test_callcenter_apply_as_typed_reloads_with_its_own_user",
    "asterisk.ami_apply.secret": "tests/config/test_config_apply.py::test_callcenter_apply_as_typed_reloads_with_its_own_user",
    "asterisk.agi.host": RENDER,
    "asterisk.agi.port": RENDER,
    "asterisk.agi.bind": "tests/asterisk/test_agi_trust.py::test_binding_beyond_loopback_needs_an_allow_list",
    "asterisk.agi.allow": "tests/asterisk/test_agi_trust.py::test_peer_filter_allows_loopback_and_the_allow_list_only",
    "asterisk.sounds_dir": f"{DIALER}::test_runtime_from_the_example_config",
    "asterisk.moh_dir": RENDER,
    # trunks and phones
    "trunks.*.id": RENDER,
    "trunks.*.host": RENDER,
    "trunks.*.port": RENDER,
    "trunks.*.transport": RENDER,
    "trunks.*.auth.username": RENDER,
    "trunks.*.auth.password": RENDER,
    "trunks.*.inbound_auth.username": RENDER,
    "trunks.*.inbound_auth.password": RENDER,
    "trunks.*.match": "tests/config/test_config_phones.py::test_the_example_identifies_carriers_by_address_and_phones_by_user_name",
    "trunks.*.codecs": RENDER,
    "trunks.*.trust_caller_id": "tests/config/test_dialout.py::test_a_callback_to_an_untrusted_caller_id_must_collect_the_number",
    "trunks.*.caller_id": RENDER,
    "trunks.*.outbound": RENDER,
    "trunks.*.media.dtmf_mode": PHONES,
    "trunks.*.media.rtp_timeout": PHONES,
    "trunks.*.media.rtp_timeout_hold": PHONES,
    "trunks.*.media.timers": PHONES,
    "trunks.*.media.timers_sess_expires": PHONES,
    "trunks.*.media.timers_min_se": PHONES,
    "phones.dtmf_mode": PHONES,
    "phones.rtp_timeout": PHONES,
    "phones.rtp_timeout_hold": PHONES,
    "phones.timers": PHONES,
    "phones.timers_sess_expires": PHONES,
    "phones.timers_min_se": PHONES,
    # numbers
    "numbers[].number": "tests/config/test_config_render.py::test_dialplan_contexts_and_dids",
    "numbers[].flow": "tests/config/test_config_render.py::test_dialplan_contexts_and_dids",
    "numbers[].trunk": RENDER,
    "numbers[].label": RENDER,
    "numbers[].language": "tests/inbound/test_ivr_agi.py::test_valid_keys_reach_the_acd_with_everything_gathered",
    # IVR flows
    "flows.*.id": f"{IVR}::test_deep_flows_chained_by_goto",
    "flows.*.start": f"{IVR}::test_deep_flows_chained_by_goto",
    f"{NODE}<PromptNode>.id": f"{IVR}::test_every_step_is_logged_with_node_input_and_outcome",
    f"{NODE}<PromptNode>.prompts": f"{IVR}::test_a_key_over_a_plain_prompt_is_ignored_and_the_menu_plays",
    f"{NODE}<PromptNode>.next": f"{IVR}::test_a_key_over_a_plain_prompt_is_ignored_and_the_menu_plays",
    f"{NODE}<PromptNode>.interruptible": f"{IVR}::test_a_key_over_an_interruptible_prompt_answers_the_next_menu",
    f"{NODE}<MenuNode>.id": f"{IVR}::test_every_step_is_logged_with_node_input_and_outcome",
    f"{NODE}<MenuNode>.prompt": f"{IVR}::test_menu_without_timeout_prompt_just_replays",
    f"{NODE}<MenuNode>.choices": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<MenuNode>.timeout": f"{IVR}::test_menu_timeouts_replay_with_timeout_prompt_then_fall_back",
    f"{NODE}<MenuNode>.max_attempts": f"{IVR}::test_menu_invalid_digits_count_and_fall_back",
    f"{NODE}<MenuNode>.invalid_prompt": f"{IVR}::test_menu_invalid_digits_count_and_fall_back",
    f"{NODE}<MenuNode>.timeout_prompt": f"{IVR}::test_menu_timeouts_replay_with_timeout_prompt_then_fall_back",
    f"{NODE}<MenuNode>.repeat_key": f"{IVR}::test_repeat_key_replays_without_counting",
    f"{NODE}<MenuNode>.fallback": f"{IVR}::test_menu_invalid_digits_count_and_fall_back",
    f"{NODE}<CollectNode>.id": f"{IVR}::test_every_step_is_logged_with_node_input_and_outcome",
    f"{NODE}<CollectNode>.prompt": f"{IVR}::test_collect_valid_account_is_stored_and_masked_in_the_log",
    f"{NODE}<CollectNode>.variable": f"{IVR}::test_collect_valid_account_is_stored_and_masked_in_the_log",
    f"{NODE}<CollectNode>.min_digits": f"{IVR}::test_collect_validations",
    f"{NODE}<CollectNode>.max_digits": f"{IVR}::test_collect_validations",
    f"{NODE}<CollectNode>.terminator": "tests/inbound/test_ivr_agi.py::test_collect_with_a_custom_terminator_uses_wait_for_digit",
    f"{NODE}<CollectNode>.timeout": "tests/inbound/test_ivr_agi.py::test_collect_with_a_custom_terminator_uses_wait_for_digit",
    f"{NODE}<CollectNode>.validation": f"{IVR}::test_collect_validations",
    f"{NODE}<CollectNode>.max_attempts": f"{IVR}::test_collect_invalid_retries_with_invalid_prompt_then_falls_back",
    f"{NODE}<CollectNode>.invalid_prompt": f"{IVR}::test_collect_invalid_retries_with_invalid_prompt_then_falls_back",
    f"{NODE}<CollectNode>.next": f"{IVR}::test_collect_valid_account_is_stored_and_masked_in_the_log",
    f"{NODE}<CollectNode>.fallback": f"{IVR}::test_collect_invalid_retries_with_invalid_prompt_then_falls_back",
    f"{NODE}<HoursNode>.id": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    f"{NODE}<HoursNode>.open": f"{IVR}::test_hours_in_the_centers_timezone_across_dst",
    f"{NODE}<HoursNode>.closed": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    f"{NODE}<HoursNode>.holiday": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    f"{NODE}<LanguageNode>.id": f"{IVR}::test_every_step_is_logged_with_node_input_and_outcome",
    f"{NODE}<LanguageNode>.prompt": f"{IVR}::test_language_choice_switches_prompts_and_sets_the_channel",
    f"{NODE}<LanguageNode>.choices": f"{IVR}::test_language_choice_switches_prompts_and_sets_the_channel",
    f"{NODE}<LanguageNode>.timeout": f"{IVR}::test_language_invalid_keeps_current_after_max_attempts",
    f"{NODE}<LanguageNode>.max_attempts": f"{IVR}::test_language_invalid_keeps_current_after_max_attempts",
    f"{NODE}<LanguageNode>.next": f"{IVR}::test_language_choice_switches_prompts_and_sets_the_channel",
    f"{NODE}<SetNode>.id": f"{IVR}::test_every_step_is_logged_with_node_input_and_outcome",
    f"{NODE}<SetNode>.skills": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<SetNode>.priority": f"{IVR}::test_queue_priority_defaults_and_overrides",
    f"{NODE}<SetNode>.data": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<SetNode>.language": f"{IVR}::test_language_choice_switches_prompts_and_sets_the_channel",
    f"{NODE}<SetNode>.next": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<LookupNode>.id": f"{IVR}::test_lookup_timeout_or_error_goes_not_found_and_the_call_goes_on",
    f"{NODE}<LookupNode>.timeout": f"{IVR}::test_lookup_timeout_or_error_goes_not_found_and_the_call_goes_on",
    f"{NODE}<LookupNode>.tier_priority": f"{IVR}::test_lookup_tier_without_boost_keeps_priority",
    f"{NODE}<LookupNode>.found": "tests/inbound/test_ivr_pg.py::test_calls_and_every_ivr_step_land_in_postgres",
    f"{NODE}<LookupNode>.not_found": f"{IVR}::test_lookup_timeout_or_error_goes_not_found_and_the_call_goes_on",
    f"{NODE}<GotoFlowNode>.id": f"{IVR}::test_deep_flows_chained_by_goto",
    f"{NODE}<GotoFlowNode>.flow": f"{IVR}::test_deep_flows_chained_by_goto",
    f"{NODE}<QueueNode>.id": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<QueueNode>.queue": f"{IVR}::test_menu_choice_goes_to_queue_with_gathered_skills_priority_and_data",
    f"{NODE}<QueueNode>.prompt": "tests/inbound/test_ivr_agi.py::test_valid_keys_reach_the_acd_with_everything_gathered",
    f"{NODE}<QueueNode>.priority": f"{IVR}::test_queue_priority_defaults_and_overrides",
    f"{NODE}<VoicemailNode>.id": f"{IVR}::test_voicemail_and_callback_exits",
    f"{NODE}<VoicemailNode>.mailbox": "tests/inbound/test_ivr_agi.py::test_voicemail_sets_the_mailbox_for_the_dialplan",
    f"{NODE}<VoicemailNode>.prompt": f"{IVR}::test_voicemail_and_callback_exits",
    f"{NODE}<CallbackNode>.id": f"{IVR}::test_voicemail_and_callback_exits",
    f"{NODE}<CallbackNode>.queue": "tests/inbound/test_ivr_agi.py::test_callback_request_goes_to_the_acd",
    f"{NODE}<CallbackNode>.prompt": f"{IVR}::test_voicemail_and_callback_exits",
    f"{NODE}<CallbackNode>.number_variable": f"{IVR}::test_callback_to_a_collected_number",
    f"{NODE}<HangupNode>.id": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    f"{NODE}<HangupNode>.prompt": f"{IVR}::test_closed_and_holiday_branches_hang_up_after_hours",
    # skills, queues
    "skills": "tests/config/test_config_load.py::test_unknown_skill_in_agent",
    "queues.*.id": f"{ROUTING}::test_agent_only_takes_calls_it_is_skilled_for",
    "queues.*.name": f"{ACD}::test_caller_input_never_reaches_the_originate_raw",
    "queues.*.skills": f"{ROUTING}::test_agent_only_takes_calls_it_is_skilled_for",
    "queues.*.priority": f"{ROUTING}::test_priority_is_respected",
    "queues.*.sl_percent": "tests/app/test_reload.py::test_the_controller_takes_its_ami_settings",
    "queues.*.sl_seconds": "tests/store/test_store_reports.py::test_service_level_variants_and_queue_targets",
    "queues.*.max_wait": f"{ROUTING}::test_max_wait_overflows_keeping_arrival_then_expires",
    "queues.*.overflow.kind": f"{ACD}::test_announcements_and_max_wait_to_voicemail",
    "queues.*.overflow.target": f"{ROUTING}::test_max_wait_overflows_keeping_arrival_then_expires",
    "queues.*.announce_period": f"{ACD}::test_announcements_and_max_wait_to_voicemail",
    "queues.*.announce_position": "tests/acd/test_announcements.py::test_a_late_position_plays_only_existing_files",
    "queues.*.announce_wait": "tests/acd/test_announcements.py::test_a_late_position_plays_only_existing_files",
    "queues.*.music_class": f"{ACD}::test_answered_call_rings_bridges_records_wraps_up",
    "queues.*.wrapup": f"{ACD}::test_answered_call_rings_bridges_records_wraps_up",
    "queues.*.recording": "tests/acd/test_acd_e2e.py::test_traffic_on_three_queues_with_rona_and_recordings",
    "queues.*.callback_offer_after": "tests/acd/test_callback_offer.py::test_the_caller_hears_the_offer_presses_1_and_is_called_back_agent_first",
    "queues.*.strategy": f"{ROUTING}::test_longest_idle_least_calls_best_skill_round_robin",
    "queues.*.ring_timeout": "tests/app/test_reload.py::test_apply_changes_the_ring_timeout_of_the_next_call_with_a_call_in_flight",
    "queues.*.rona_count": f"{ACD}::test_rona_count_two_keeps_the_agent_but_never_reoffers_it_the_same_call",
    "queues.*.rona_action": f"{ACD}::test_rona_reoffers_to_the_next_agent_and_applies_the_queue_rule",
    "queues.*.rona_pause_reason": "tests/acd/test_acd_e2e.py::test_traffic_on_three_queues_with_rona_and_recordings",
    "queues.*.relaxation[].after_seconds": f"{ROUTING}::test_relaxation_lowers_levels_then_adds_a_skill_and_is_applied_at_its_time",
    "queues.*.relaxation[].min_level": f"{ROUTING}::test_relaxation_lowers_levels_then_adds_a_skill_and_is_applied_at_its_time",
    "queues.*.relaxation[].add_skill": f"{ROUTING}::test_relaxation_lowers_levels_then_adds_a_skill_and_is_applied_at_its_time",
    "queues.*.relaxation[].add_skill_level": f"{ROUTING}::test_relaxation_lowers_levels_then_adds_a_skill_and_is_applied_at_its_time",
    "queues.*.mailbox": f"{ACD}::test_announcements_and_max_wait_to_voicemail",
    "queues.*.caller_id": f"{ACD}::test_a_queue_caller_id_is_shown_to_the_agent_instead_of_the_callers",
    "queues.*.dispositions": "tests/acd/test_wrapup.py::test_a_configured_code_is_chosen",
    "campaigns.*.dispositions": "tests/config/test_config_dispositions.py::test_a_campaigns_codes_win_over_its_queues",
    "dispositions.*.code": "tests/acd/test_wrapup.py::test_a_missing_or_unknown_code_is_refused",
    "dispositions.*.label": "tests/config/test_config_dispositions.py::test_codes_are_read_with_their_labels",
    "queues.*.thresholds.service_level.amber": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    "queues.*.thresholds.service_level.red": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    "queues.*.thresholds.longest_wait.amber": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    "queues.*.thresholds.longest_wait.red": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    "queues.*.thresholds.waiting.amber": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    "queues.*.thresholds.waiting.red": "tests/reporting/test_feed.py::test_a_queues_configured_thresholds_drive_its_levels",
    # people
    "agents.*.id": f"{ACD}::test_answered_call_rings_bridges_records_wraps_up",
    "agents.*.name": RENDER,
    "agents.*.endpoint": f"{ACD}::test_answered_call_rings_bridges_records_wraps_up",
    "agents.*.extension": RENDER,
    "agents.*.skills": f"{ROUTING}::test_agent_only_takes_calls_it_is_skilled_for",
    "agents.*.pin": f"{ACD}::test_pin_lockout",
    "agents.*.mailbox": RENDER,
    "agents.*.sip_password": RENDER,
    "agents.*.dtmf_mode": "tests/config/test_config_phones.py::test_phones_trunks_and_one_agent_set_their_own",
    "supervisors.*.id": SPY,
    "supervisors.*.name": RENDER,
    "supervisors.*.endpoint": SPY,
    "supervisors.*.pin": "tests/supervision/test_monitor.py::test_wrong_pins_then_lockout_then_unlocked_after_the_lockout_time",
    "supervisors.*.queues": "tests/supervision/test_monitor_sim.py::test_unauthorised_supervisor_or_agent",
    "supervisors.*.extension": RENDER,
    "supervisors.*.sip_password": RENDER,
    "supervisors.*.dtmf_mode": "tests/config/test_config_phones.py::test_phones_trunks_and_one_agent_set_their_own",
    "pause_reasons.*.code": f"{ACD}::test_pause_asked_on_a_call_applies_after_the_one_wrap_up",
    "pause_reasons.*.name": "tests/acd/test_acd_api.py::test_an_agent_reads_the_pause_reasons_with_their_names",
    "pause_reasons.*.digits": FEATURES,
    "pause_reasons.*.max_minutes": f"{ACD}::test_a_pause_past_its_max_minutes_is_logged_as_an_overrun",
    # recording
    "recording.directory": "tests/acd/test_acd_e2e.py::test_traffic_on_three_queues_with_rona_and_recordings",
    "recording.format": "tests/acd/test_recording.py::test_file_names_come_from_date_and_call_id_only",
    "recording.retention_days": "tests/acd/test_recording.py::test_purge_command_dry_run_then_for_real",
    "recording.pci.enabled": "tests/acd/test_recording.py::test_recorder_on_demand_pci_and_length",
    "recording.pci.auto_resume": f"{ACD}::test_pci_pause_mutes_logs_and_resumes_by_itself",
    # feature codes (rendered into the dialplan, and read back by the feature route)
    "feature_codes.agent_login": FEATURES,
    "feature_codes.agent_logout": FEATURES,
    "feature_codes.agent_pause": FEATURES,
    "feature_codes.agent_unpause": FEATURES,
    "feature_codes.pci_pause": f"{ACD}::test_feature_pci_on_the_agents_call",
    "feature_codes.pci_resume": f"{ACD}::test_feature_pci_on_the_agents_call",
    "feature_codes.record_start": "tests/config/test_config_render.py::test_feature_codes_reach_the_controller",
    "feature_codes.supervisor_listen": SPY,
    "feature_codes.supervisor_whisper": SPY,
    "feature_codes.supervisor_barge": SPY,
    "feature_codes.supervisor_ask": ASK,
    # security and dial-out
    "security.pin_attempts": f"{ACD}::test_pin_lockout_follows_the_security_section_also_after_a_reload",
    "security.lockout_seconds": "tests/supervision/test_monitor.py::test_the_security_section_sets_the_lockout_and_a_reload_changes_it",
    "dialout.countries": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    "dialout.number_types": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    "dialout.allow": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    "dialout.deny": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    "dialout.internal": "tests/config/test_dialout.py::test_number_types_deny_and_allow_prefixes",
    # callbacks callers asked for
    "callbacks.max_attempts": CALLBACKS,
    "callbacks.retry_delay": CALLBACKS,
    "callbacks.window.start": CALLBACKS,
    "callbacks.window.end": CALLBACKS,
    "callbacks.window.days": "tests/acd/test_callback_policy.py::test_the_window_holds_in_every_zone_of_the_number",
    "callbacks.timezone": "tests/acd/test_callback_offer.py::test_a_number_that_does_not_tell_its_zone_uses_the_policy_timezone",
    # music, mailboxes, the static fallback
    "music.*.name": RENDER,
    "music.*.directory": RENDER,
    "music.*.sort": RENDER,
    "mailboxes.*.id": RENDER,
    "mailboxes.*.name": RENDER,
    "mailboxes.*.email": RENDER,
    "mailboxes.*.pin": RENDER,
    "fallback.prompt": "tests/config/test_config_render.py::test_fallback_rings_every_agent_then_voicemail",
    "fallback.ring_seconds": RENDER,
    "fallback.endpoints": "tests/config/test_config_render.py::test_fallback_rings_every_agent_then_voicemail",
    "fallback.mailbox": "tests/config/test_config_render.py::test_fallback_rings_every_agent_then_voicemail",
    "fallback.closed_prompt": "tests/config/test_config_render.py::test_fallback_with_closed_prompt_checks_the_weekly_hours",
    # campaigns
    "campaigns.*.id": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.name": RENDER,
    "campaigns.*.queue": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.mode": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.caller_id": f"{DIALER}::test_every_outcome_branch",
    "campaigns.*.contacts": "tests/config/test_config_load.py::test_campaign_files_must_exist",
    "campaigns.*.skills": "tests/outbound/test_pool.py::test_a_campaigns_skills_narrow_its_agents_and_route_its_calls",
    "campaigns.*.trunk": f"{DIALER}::test_every_outcome_branch",
    "campaigns.*.window.start": f"{DIALER_CORE}::test_contacts_wait_for_their_window",
    "campaigns.*.window.end": f"{DIALER_CORE}::test_contacts_wait_for_their_window",
    "campaigns.*.window.days": f"{DIALER_CORE}::test_next_open_skips_closed_days_and_is_exact",
    "campaigns.*.timezone": f"{DIALER_CORE}::test_next_open_across_zones_is_the_strictest",
    "campaigns.*.max_attempts": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.retry.busy": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.retry.no_answer": f"{DIALER_CORE}::test_retry_delay_per_outcome_and_max_attempts",
    "campaigns.*.retry.machine": f"{DIALER_CORE}::test_retry_delay_per_outcome_and_max_attempts",
    "campaigns.*.retry.failed": f"{DIALER_CORE}::test_retry_delay_per_outcome_and_max_attempts",
    "campaigns.*.dnc": f"{DIALER}::test_dnc_in_the_database_is_never_dialled",
    "campaigns.*.amd": RENDER,
    "campaigns.*.amd_action": RENDER,
    "campaigns.*.amd_message": f"{DIALER}::test_machine_message_branches",
    "campaigns.*.abandon_limit": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.abandon_window_days": f"{DIALER}::test_runtime_from_the_example_config",
    "campaigns.*.connect_within": "tests/outbound/test_dialer_sim.py::test_no_agent_in_time_is_an_abandon_with_identification",
    "campaigns.*.identification_prompt": f"{DIALER}::test_every_outcome_branch",
    "campaigns.*.max_ratio": f"{DIALER_CORE}::test_predictive_respects_line_cap",
    "campaigns.*.ring_timeout": f"{DIALER}::test_every_outcome_branch",
    "campaigns.*.enabled": f"{DIALER}::test_a_disabled_campaign_places_no_call",
    "campaigns.*.amd_settings.initial_silence": RENDER,
    "campaigns.*.amd_settings.greeting": RENDER,
    "campaigns.*.amd_settings.after_greeting_silence": RENDER,
    "campaigns.*.amd_settings.total_analysis_time": RENDER,
    "campaigns.*.amd_settings.min_word_length": RENDER,
    "campaigns.*.amd_settings.between_words_silence": RENDER,
    "campaigns.*.amd_settings.max_words": RENDER,
    "campaigns.*.amd_settings.silence_threshold": RENDER,
    "campaigns.*.amd_settings.max_word_length": RENDER,
    "campaigns.*.amd_settings.beep_silence": RENDER,
    "campaigns.*.amd_settings.beep_max_wait": RENDER,
    "campaigns.*.blend.inbound_first": "tests/outbound/test_pool.py::test_inbound_first_counts_the_callers_waiting_for_the_campaigns_agents",
    "campaigns.*.blend.min_idle_for_inbound": "tests/outbound/test_pool.py::test_the_blend_rule_keeps_agents_for_inbound",
    # prompts (ivr_prompts/prompts.yaml and the audio beside it)
    "prompts": f"{IVR}::test_prompt_without_audio_in_language_falls_back_to_default",
}

# Dataclasses that are one value each (their parts are not keys of their own).
ATOMS: tuple[type, ...] = (m.Secret, m.PromptCatalog)


def _walk(t: object, path: str, out: list[str]) -> None:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t in ATOMS:
        out.append(path)
    elif origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if dataclasses.is_dataclass(a)]
        if len(kinds) > 1:
            for kind in kinds:
                _fields(kind, f"{path}<{kind.__name__}>.", out)
        elif kinds:
            _walk(kinds[0], path, out)
        else:
            out.append(path)
    elif isinstance(t, type) and dataclasses.is_dataclass(t):
        _fields(t, path + ".", out)
    elif origin is collections.abc.Mapping and _composite(args[1]):
        _walk(args[1], path + ".*", out)
    elif origin is tuple and args and _composite(args[0]):
        _walk(args[0], path + "[]", out)
    else:
        out.append(path)


def _composite(t: object) -> bool:
    union = typing.get_origin(t) in (typing.Union, types.UnionType)
    return dataclasses.is_dataclass(t) or (
        union and any(dataclasses.is_dataclass(a) for a in typing.get_args(t))
    )


def _fields(cls: type, prefix: str, out: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        _walk(hints[f.name], prefix + f.name, out)


def model_leaves() -> list[str]:
    out: list[str] = []
    _fields(m.Config, "", out)
    return out


def test_the_walk_sees_every_kind_of_leaf() -> None:
    leaves = model_leaves()
    assert len(leaves) == len(set(leaves))
    for sample in ("queues.*.ring_timeout", "numbers[].flow", f"{NODE}<MenuNode>.choices", "agents.*.pin"):
        assert sample in leaves
    assert not [leaf for leaf in leaves if leaf.startswith("agents.*.pin.")]  # a secret is one value


def test_every_leaf_of_the_model_is_proved_to_act() -> None:
    leaves = model_leaves()
    unproved = [leaf for leaf in leaves if leaf not in PROOF]
    assert not unproved, (
        f"fields with no test proving their effect (make them act, or remove them): {unproved}"
    )
    stale = [key for key in PROOF if key not in leaves]
    assert not stale, f"entries for fields the model no longer has: {stale}"


def test_every_proof_names_a_test_that_exists() -> None:
    defined: dict[str, set[str]] = {}
    missing = []
    for field, proof in sorted(PROOF.items()):
        path, _, name = proof.partition("::")
        if path not in defined:
            source = REPO / path
            tree = ast.parse(source.read_text()) if source.is_file() else ast.Module(body=[], type_ignores=[])
            defined[path] = {
                n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        if not re.fullmatch(r"test_\w+", name) or name not in defined[path]:
            missing.append(f"{field}: {proof}")
    assert not missing, "proofs naming no test:\n" + "\n".join(missing)


def test_removed_keys_are_refused_with_their_location(tmp_path: Path) -> None:
    from tests.centers import problems

    found = problems(tmp_path, "recording:\n  stereo: true\n")
    assert any("stereo" in p for p in found), found
